"""What the Arena tab shows, rendered from the service's data: reveal, close line, results, leaderboard."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from evaluate.arena import ArenaResults, Matchup, VoteReceipt
from evaluate.arena_view import close_line, leaderboard_markdown, results_markdown, reveal_markdown

HOSTILE = "<b>x</b>|[y](z)*"
SHOWN = r"&lt;b&gt;x&lt;/b&gt;\|\[y\](z)\*"  # what Markdown prints literally


def test_the_reveal_names_both_sides_literally():
    assert reveal_markdown(VoteReceipt(7, HOSTILE, "sft", "left")) == (
        f"Vote #7 stored. Left was **{SHOWN}**, right was **sft**: you preferred **{SHOWN}**."
    )
    assert reveal_markdown(VoteReceipt(8, "sft", HOSTILE, "right")).endswith(f"you preferred **{SHOWN}**.")
    assert reveal_markdown(VoteReceipt(9, "a", "b", "both_bad")) == (
        "Vote #9 stored. Left was **a**, right was **b**: you voted both bad."
    )


def test_the_close_line_says_whether_the_arena_was_open():
    m = Matchup("sft", HOSTILE)
    assert close_line(m, True) == f"Arena sft vs {SHOWN} (heldout prompts) closed."
    assert close_line(m, False) == f"Arena sft vs {SHOWN} (heldout prompts) was not open."


def _results(length, length_error, board):
    summary = SimpleNamespace(summary=lambda: f"{HOSTILE} beats sft 60.0%")
    return ArenaResults(summary, {"summary": "none detected"}, length, length_error, 5, 2, board)


def test_results_in_order_with_the_length_rate_or_why_not_yet():
    assert results_markdown(None) == "No votes in this matchup yet."
    length = SimpleNamespace(summary=lambda: "raw 60.0%, length-controlled 55.0%")
    assert results_markdown(_results(length, None, None)) == (
        f"**{SHOWN} beats sft 60.0%**\n\nPosition bias: none detected\n\n"
        "Length: raw 60.0%, length-controlled 55.0%\n\n5 votes from 2 voter(s)."
    )
    not_yet = results_markdown(_results(None, "needs 2 votes_per_side", None))
    assert r"Length-controlled rate: not yet (needs 2 votes\_per\_side)" in not_yet.split("\n\n")


def test_the_leaderboard_is_a_table_best_first_and_follows_the_results():
    table = pd.DataFrame(
        {
            "variant": [HOSTILE, "sft"],
            "rating": [1040.4, 959.6],
            "low": [990.2, 901.0],
            "high": [1101.0, 1010.7],
        }
    ).assign(n_votes=[12, 12])
    board = (
        "**All variants (Bradley–Terry, Elo scale, 95% bootstrap interval)**\n\n"
        "| variant | rating | 95% CI | votes |\n|---|---|---|---|\n"
        f"| {SHOWN} | 1040 | 990–1101 | 12 |\n| sft | 960 | 901–1011 | 12 |"
    )
    assert leaderboard_markdown(table) == board
    assert leaderboard_markdown(None) == ""
    assert results_markdown(_results(None, "too few", table)).endswith("5 votes from 2 voter(s).\n\n" + board)
