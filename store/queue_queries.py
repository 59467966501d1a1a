"""The labelling queue: who holds which pair, claims, releases, undo and progress."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

# A pair is drawn for double labelling when hash(pair_id) % 1000 falls under overlap * 1000:
# deterministic, so every annotator and every restart agrees on which pairs overlap.
_OVERLAP_BUCKETS = 1000


@dataclass(frozen=True)
class Progress:
    """How far one annotator and the whole team are."""

    mine: int
    total: int
    labelled_pairs: int


class QueueQueries:
    """Assignment queue; relies on `cursor()` and `write()` from `Store`."""

    cursor: Callable[[], duckdb.DuckDBPyConnection]
    write: Callable[..., Any]
    # One serving process owns the database; this lock makes "pick a free pair, then hold it" atomic
    # across its request threads (DuckDB's optimistic concurrency would let two inserts both succeed).
    _claim_lock = threading.Lock()

    def claim_pair(self, annotator: str, *, timeout_s: float, overlap: float = 0.0) -> int | None:
        """The pair this annotator should label next, held for them; resumes a live assignment first."""
        with self._claim_lock:
            return self.write(lambda cur: self._claim(cur, annotator, timeout_s, overlap))

    def _claim(
        self, cur: duckdb.DuckDBPyConnection, annotator: str, timeout_s: float, overlap: float
    ) -> int | None:
        live = "a.released_at IS NULL AND a.assigned_at > current_timestamp - to_seconds(?::DOUBLE)"
        held = cur.execute(
            f"SELECT a.pair_id FROM assignments a WHERE a.annotator = ? AND {live} "
            "AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.pair_id = a.pair_id AND l.annotator = ? "
            "AND l.superseded_by IS NULL) ORDER BY a.id DESC LIMIT 1",
            [annotator, timeout_s, annotator],
        ).fetchone()
        if held:
            return int(held[0])
        threshold = int(round(overlap * _OVERLAP_BUCKETS))
        row = cur.execute(
            f"""
            WITH done AS (
                -- Pairs queued for review count only human labels: their import label is not the last word.
                SELECT pair_id, count(DISTINCT annotator) AS n FROM labels
                WHERE superseded_by IS NULL AND decision <> 'skip'
                  AND (source = 'human' OR pair_id NOT IN (SELECT pair_id FROM review_queue))
                GROUP BY pair_id
            ), holding AS (
                SELECT pair_id, count(DISTINCT annotator) AS n FROM assignments a
                WHERE {live} AND a.annotator <> ? GROUP BY pair_id
            )
            SELECT p.id FROM pairs p
            LEFT JOIN done ON done.pair_id = p.id
            LEFT JOIN holding ON holding.pair_id = p.id
            WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.pair_id = p.id AND l.annotator = ?
                              AND l.superseded_by IS NULL)
              AND coalesce(done.n, 0) + coalesce(holding.n, 0)
                  < CASE WHEN hash(p.id) % {_OVERLAP_BUCKETS} < ? THEN 2 ELSE 1 END
            ORDER BY p.id LIMIT 1
            """,
            [timeout_s, annotator, annotator, threshold],
        ).fetchone()
        if row is None:
            return None
        pair_id = int(row[0])
        cur.execute("INSERT INTO assignments (pair_id, annotator) VALUES (?, ?)", [pair_id, annotator])
        return pair_id

    def queue_model_pairs_for_review(self, model_name: str) -> int:
        """Put every pair whose responses came from `model_name` (an imported source) in the review queue."""

        def insert(cur: duckdb.DuckDBPyConnection) -> int:
            before = cur.execute("SELECT count(*) FROM review_queue").fetchone()[0]
            cur.execute(
                "INSERT INTO review_queue (pair_id) SELECT DISTINCT p.id FROM pairs p "
                "JOIN generations g ON g.id = p.gen_a JOIN models m ON m.id = g.model_id WHERE m.name = ? "
                "ON CONFLICT DO NOTHING",
                [model_name],
            )
            return int(cur.execute("SELECT count(*) FROM review_queue").fetchone()[0] - before)

        return self.write(insert)

    def hold_pair(self, annotator: str, pair_id: int) -> None:
        """Give a specific pair back to an annotator (after an undo)."""
        with self._claim_lock:
            self.write(
                lambda cur: cur.execute(
                    "INSERT INTO assignments (pair_id, annotator) VALUES (?, ?)", [pair_id, annotator]
                )
            )

    def release_pair(self, annotator: str, pair_id: int) -> None:
        """End this annotator's hold on a pair."""
        self.write(
            lambda cur: cur.execute(
                "UPDATE assignments SET released_at = current_timestamp "
                "WHERE annotator = ? AND pair_id = ? AND released_at IS NULL",
                [annotator, pair_id],
            )
        )

    def last_live_label(self, annotator: str, *, source: str = "human") -> tuple[int, int] | None:
        """(label_id, pair_id) of the annotator's newest label that undo can withdraw."""
        row = (
            self.cursor()
            .execute(
                "SELECT id, pair_id FROM labels WHERE annotator = ? AND source = ? AND superseded_by IS NULL "
                "ORDER BY id DESC LIMIT 1",
                [annotator, source],
            )
            .fetchone()
        )
        return None if row is None else (int(row[0]), int(row[1]))

    def progress(self, annotator: str) -> Progress:
        """Pairs this annotator has labelled (skips included), all pairs, pairs with a real label."""
        mine, total, labelled = (
            self.cursor()
            .execute(
                "SELECT (SELECT count(DISTINCT pair_id) FROM labels WHERE annotator = ? AND superseded_by IS NULL), "
                "(SELECT count(*) FROM pairs), "
                "(SELECT count(DISTINCT pair_id) FROM labels WHERE superseded_by IS NULL AND decision <> 'skip')",
                [annotator],
            )
            .fetchone()
        )
        return Progress(int(mine), int(total), int(labelled))
