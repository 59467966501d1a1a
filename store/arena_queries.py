"""Blind-arena queries: battle candidates, votes, and the vote frame the ratings read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import duckdb

VOTES = ("left", "right", "tie", "both_bad")


class ArenaQueries:
    """Battles; relies on `cursor()` and `write()` from `Store`."""

    cursor: Callable[[], duckdb.DuckDBPyConnection]
    write: Callable[..., Any]

    def arena_candidates(
        self, model_a: int, model_b: int, cell: str, prompt_ids: Sequence[int]
    ) -> list[tuple]:
        """(prompt_id, gen of a, gen of b) for prompts where both variants have a response under `cell`."""
        rows = (
            self.cursor()
            .execute(
                "SELECT ga.prompt_id, min(ga.id), min(gb.id) FROM generations ga "
                "JOIN generations gb ON gb.prompt_id = ga.prompt_id AND gb.model_id = ? AND gb.cell = ? "
                "WHERE ga.model_id = ? AND ga.cell = ? AND list_contains(?, ga.prompt_id) "
                "GROUP BY ga.prompt_id ORDER BY ga.prompt_id",
                [model_b, cell, model_a, cell, list(prompt_ids)],
            )
            .fetchall()
        )
        return [(int(p), int(a), int(b)) for p, a, b in rows]

    def voted_generation_pairs(self, voter: str) -> set[frozenset[int]]:
        """The response pairs this voter already judged (either side order)."""
        rows = (
            self.cursor()
            .execute("SELECT left_gen, right_gen FROM battles WHERE voter = ?", [voter])
            .fetchall()
        )
        return {frozenset((int(a), int(b))) for a, b in rows}

    def add_battle(
        self, prompt_id: int, left_gen: int, right_gen: int, seed: int, voter: str, vote: str
    ) -> int:
        """Store one blind vote; vote names the screen side."""
        if vote not in VOTES:
            from errors import StoreError

            raise StoreError(f"vote must be one of {', '.join(VOTES)}; got {vote!r}")
        return self.write(
            lambda cur: int(
                cur.execute(
                    "INSERT INTO battles (prompt_id, left_gen, right_gen, seed, voter, vote) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    [prompt_id, left_gen, right_gen, seed, voter, vote],
                ).fetchone()[0]
            )
        )

    def battle_frame(self):
        """Every vote with the variants behind each side and the responses' word counts."""
        return (
            self.cursor()
            .execute(
                "SELECT b.id, b.prompt_id, b.voter, b.vote, b.seed, b.created_at, ml.name AS left, mr.name AS right, "
                "len(string_split(trim(gl.text), ' ')) AS len_left, len(string_split(trim(gr.text), ' ')) AS len_right "
                "FROM battles b JOIN generations gl ON gl.id = b.left_gen JOIN generations gr ON gr.id = b.right_gen "
                "JOIN models ml ON ml.id = gl.model_id JOIN models mr ON mr.id = gr.model_id ORDER BY b.id"
            )
            .df()
        )
