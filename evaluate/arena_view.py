"""What the Arena tab shows: the service's data (evaluate/arena.py) rendered as Markdown.

Variant names are user-chosen text, so every one passes through `md_text` and shows literally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.safe_text import md_text
from evaluate.arena import ArenaResults, Matchup, VoteReceipt
from webui.common import empty_state

if TYPE_CHECKING:
    import pandas as pd

NOT_OPEN = (
    "### This arena is not open\n\nAn admin opens it with **Prepare responses** (it generates "
    "both variants' answers, cached); battles open as they land."
)
NO_BATTLE = (
    "### No battle ready\n\nEvery prepared battle has your vote, or responses are still "
    "being generated; new battles appear here as they land."
)
LEAK = "⚠️ A response names a model or adapter (identity leak)."


def arena_empty_state(n_models: int) -> str:
    """What the Arena tab tells a user with fewer than two variants to compare."""
    steps = [
        f"Have at least two variants (you have {n_models}): train the demo SFT in **Train**, or register yours "
        "in **Data** → *Models* (admin).",
        "Train a DPO adapter (**Train** tab); it is registered as `sft+dpo@<run>`.",
        "Vote blind here: identities stay hidden until you vote. Keys: `1` left, `2` right, `3` tie, `4` both bad.",
    ]
    return empty_state("No battles yet", steps)


def reveal_markdown(receipt: VoteReceipt) -> str:
    """The reveal line after a vote: both sides' names and what the voter chose."""
    left, right = md_text(receipt.left_variant), md_text(receipt.right_variant)
    picked = receipt.picked
    verdict = (
        f"you preferred **{md_text(picked)}**" if picked else f"you voted {receipt.vote.replace('_', ' ')}"
    )
    return f"Vote #{receipt.vote_id} stored. Left was **{left}**, right was **{right}**: {verdict}."


def close_line(matchup: Matchup, closed: bool) -> str:
    """What closing a matchup did."""
    what = f"{md_text(matchup.a)} vs {md_text(matchup.b)} ({matchup.prompt_set} prompts)"
    return f"Arena {what} closed." if closed else f"Arena {what} was not open."


def results_markdown(results: ArenaResults | None) -> str:
    """Win rate with its interval, position bias, the length-controlled rate, the vote count and the leaderboard."""
    if results is None:
        return "No votes in this matchup yet."
    lines = [f"**{md_text(results.win.summary())}**"]
    lines.append(f"Position bias: {md_text(results.position_bias['summary'])}")
    if results.length is not None:
        lines.append(f"Length: {md_text(results.length.summary())}")
    else:
        lines.append(f"Length-controlled rate: not yet ({md_text(results.length_error)})")
    lines.append(f"{results.n_votes} votes from {results.n_voters} voter(s).")
    board = leaderboard_markdown(results.leaderboard)
    if board:
        lines.append(board)
    return "\n\n".join(lines)


def leaderboard_markdown(table: pd.DataFrame | None) -> str:
    """The Bradley–Terry table (Elo scale, 95% bootstrap interval); empty before three variants met."""
    if table is None:
        return ""
    rows = [
        f"| {md_text(r.variant)} | {r.rating:.0f} | {r.low:.0f}–{r.high:.0f} | {r.n_votes} |"
        for r in table.itertuples()
    ]
    return "\n".join(
        [
            "**All variants (Bradley–Terry, Elo scale, 95% bootstrap interval)**",
            "",
            "| variant | rating | 95% CI | votes |",
            "|---|---|---|---|",
            *rows,
        ]
    )
