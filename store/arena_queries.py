"""Blind-arena queries: open matchups, battle candidates, votes, and the vote frame the ratings read."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from common.errors import UserInputError
from common.vocab import Vote, values

from .base import QueryMixin, check

VOTES = values(Vote)


@dataclass(frozen=True)
class OpenArena:
    """A matchup whose battles can be served: its two variants (ids and names) and its prompt set."""

    model_ids: tuple[int, int]
    names: tuple[str, str]
    prompt_set: str


class ArenaQueries(QueryMixin):
    """Battles and arena matchups."""

    # DuckDB does not conflict on two INSERTs, so "voted already?" and the insert run under one lock.
    _vote_lock = threading.Lock()

    def open_arena(self, model_a: int, model_b: int, prompt_set: str, by: str | None) -> None:
        """Record a matchup as open (battles may be served), reopening it if an admin had closed it."""
        lo, hi = sorted((int(model_a), int(model_b)))
        self.write(
            lambda cur: cur.execute(
                "INSERT INTO arena_matchups (model_lo, model_hi, prompt_set, opened_by) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (model_lo, model_hi, prompt_set) DO UPDATE SET opened_by = excluded.opened_by, "
                "opened_at = now(), closed_by = NULL, closed_at = NULL",
                [lo, hi, prompt_set, by],
            )
        )

    def close_arena(self, model_a: int, model_b: int, prompt_set: str, by: str | None) -> bool:
        """Close an open matchup; False when it was not open."""
        lo, hi = sorted((int(model_a), int(model_b)))
        return self.write(
            lambda cur: (
                cur.execute(
                    "UPDATE arena_matchups SET closed_by = ?, closed_at = current_timestamp "
                    "WHERE model_lo = ? AND model_hi = ? AND prompt_set = ? AND closed_at IS NULL RETURNING 1",
                    [by, lo, hi, prompt_set],
                ).fetchone()
                is not None
            )
        )

    def open_arenas(self) -> list[OpenArena]:
        """Every open matchup, oldest first."""
        rows = self._rows(
            "SELECT a.model_lo, a.model_hi, ml.name, mh.name, a.prompt_set FROM arena_matchups a "
            "JOIN models ml ON ml.id = a.model_lo JOIN models mh ON mh.id = a.model_hi "
            "WHERE a.closed_at IS NULL ORDER BY a.opened_at, a.model_lo, a.model_hi"
        )
        return [OpenArena((int(lo), int(hi)), (nl, nh), ps) for lo, hi, nl, nh, ps in rows]

    def arena_is_open(self, model_a: int, model_b: int, prompt_set: str) -> bool:
        lo, hi = sorted((int(model_a), int(model_b)))
        return any(a.model_ids == (lo, hi) and a.prompt_set == prompt_set for a in self.open_arenas())

    def arena_candidates(
        self, model_a: int, model_b: int, cell: str, prompt_ids: Sequence[int]
    ) -> list[tuple]:
        """(prompt_id, gen of a, gen of b) for prompts where both variants have a response under `cell`."""
        rows = self._rows(
            "SELECT ga.prompt_id, min(ga.id), min(gb.id) FROM generations ga "
            "JOIN generations gb ON gb.prompt_id = ga.prompt_id AND gb.model_id = ? AND gb.cell = ? "
            "WHERE ga.model_id = ? AND ga.cell = ? AND list_contains(?, ga.prompt_id) "
            "GROUP BY ga.prompt_id ORDER BY ga.prompt_id",
            [model_b, cell, model_a, cell, list(prompt_ids)],
        )
        return [(int(p), int(a), int(b)) for p, a, b in rows]

    def voted_generation_pairs(self, voter: str) -> set[frozenset[int]]:
        """The response pairs this voter already judged (either side order)."""
        rows = self._rows("SELECT left_gen, right_gen FROM battles WHERE voter = ?", [voter])
        return {frozenset((int(a), int(b))) for a, b in rows}

    def add_battle(
        self, prompt_id: int, left_gen: int, right_gen: int, seed: int, voter: str, vote: str
    ) -> int:
        """Store one blind vote (vote names the screen side); a voter's second vote on a battle is refused."""
        check("vote", vote, VOTES)
        lo, hi = sorted((int(left_gen), int(right_gen)))

        def insert_once(cur: duckdb.DuckDBPyConnection) -> int:
            # The same battle is the same prompt and response pair, whichever side each was shown on.
            earlier = cur.execute(
                "SELECT id FROM battles WHERE voter = ? AND prompt_id = ? "
                "AND least(left_gen, right_gen) = ? AND greatest(left_gen, right_gen) = ? ORDER BY id LIMIT 1",
                [voter, prompt_id, lo, hi],
            ).fetchone()
            if earlier is not None:
                raise UserInputError(f"you already voted on this battle (vote #{earlier[0]}); it counts once")
            return int(
                cur.execute(
                    "INSERT INTO battles (prompt_id, left_gen, right_gen, seed, voter, vote) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    [prompt_id, left_gen, right_gen, seed, voter, vote],
                ).fetchone()[0]
            )

        with self._vote_lock:
            return self.write(insert_once)

    def battle_frame(self):
        """Every vote with the variants behind each side and the responses' word counts."""
        return self._frame(
            "SELECT b.id, b.prompt_id, b.voter, b.vote, b.seed, b.created_at, ml.name AS left, mr.name AS right, "
            "len(string_split(trim(gl.text), ' ')) AS len_left, len(string_split(trim(gr.text), ' ')) AS len_right "
            "FROM battles b JOIN generations gl ON gl.id = b.left_gen JOIN generations gr ON gr.id = b.right_gen "
            "JOIN models ml ON ml.id = gl.model_id JOIN models mr ON mr.id = gr.model_id ORDER BY b.id"
        )
