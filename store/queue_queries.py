"""The labelling queue: who holds which pair, claims, releases, undo and progress."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from common.vocab import Decision, LabelSource

from .base import QueryMixin, check
from .queries import DECISIONS

# A pair is drawn for double labelling when hash(pair_id) % 1000 falls under overlap * 1000:
# deterministic, so every annotator and every restart agrees on which pairs overlap.
_OVERLAP_BUCKETS = 1000


@dataclass(frozen=True)
class Progress:
    """How far one annotator and the whole team are."""

    mine: int
    total: int
    labelled_pairs: int


class QueueQueries(QueryMixin):
    """Assignment queue and votes; relies on the label helpers of `Queries` too."""

    _insert_label: Callable[..., int]
    _withdraw: Callable[..., int | None]
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
                WHERE superseded_by IS NULL AND decision <> ?
                  AND (source = ? OR pair_id NOT IN (SELECT pair_id FROM review_queue))
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
            [Decision.SKIP, LabelSource.HUMAN, timeout_s, annotator, annotator, threshold],
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

    def record_vote(self, pair_id: int, annotator: str, decision: str, **fields: Any) -> int | None:
        """Store a human vote and end the annotator's hold on the pair, atomically; None if they voted already.

        The "already voted?" check runs in the inserting transaction under the process lock: DuckDB lets
        two concurrent INSERTs both commit, so without it a double key press stored two live labels.
        """
        check("decision", decision, DECISIONS)

        def vote(cur: duckdb.DuckDBPyConnection) -> int | None:
            if self._live_label(cur, pair_id, annotator) is not None:
                return None
            label_id = self._insert_label(cur, pair_id, annotator, decision, LabelSource.HUMAN, **fields)
            self._release(cur, annotator, pair_id)
            return label_id

        with self._claim_lock:
            return self.write(vote)

    def undo_vote(self, annotator: str, label_id: int) -> int | None:
        """Withdraw this annotator's live human label and hold its pair again, atomically; its pair, or None."""

        def undo(cur: duckdb.DuckDBPyConnection) -> int | None:
            source = cur.execute("SELECT source FROM labels WHERE id = ?", [label_id]).fetchone()
            if source is None or source[0] != LabelSource.HUMAN:
                return None
            pair_id = self._withdraw(cur, label_id, annotator)
            if pair_id is None:
                return None
            # Whatever pair was held goes back to the queue, so the undone pair comes first.
            self._release(cur, annotator, None)
            cur.execute("INSERT INTO assignments (pair_id, annotator) VALUES (?, ?)", [pair_id, annotator])
            return pair_id

        with self._claim_lock:
            return self.write(undo)

    def release_pair(self, annotator: str, pair_id: int) -> None:
        """End this annotator's hold on a pair."""
        self.write(lambda cur: self._release(cur, annotator, pair_id))

    @staticmethod
    def _release(cur: duckdb.DuckDBPyConnection, annotator: str, pair_id: int | None) -> None:
        """End the annotator's hold on `pair_id` (every hold when None), in the caller's transaction."""
        cur.execute(
            "UPDATE assignments SET released_at = current_timestamp "
            "WHERE annotator = ? AND (? IS NULL OR pair_id = ?) AND released_at IS NULL",
            [annotator, pair_id, pair_id],
        )

    @staticmethod
    def _live_label(cur: duckdb.DuckDBPyConnection, pair_id: int, annotator: str) -> int | None:
        row = cur.execute(
            "SELECT id FROM labels WHERE pair_id = ? AND annotator = ? AND superseded_by IS NULL "
            "ORDER BY id DESC LIMIT 1",
            [pair_id, annotator],
        ).fetchone()
        return None if row is None else int(row[0])

    def live_label(self, pair_id: int, annotator: str) -> int | None:
        """The id of this annotator's live label on the pair, or None."""
        return self._live_label(self.cursor(), pair_id, annotator)

    def progress(self, annotator: str) -> Progress:
        """Pairs this annotator has labelled (skips included), all pairs, pairs with a real label."""
        mine, total, labelled = self._row(
            "SELECT (SELECT count(DISTINCT pair_id) FROM labels WHERE annotator = ? AND superseded_by IS NULL), "
            "(SELECT count(*) FROM pairs), "
            "(SELECT count(DISTINCT pair_id) FROM labels WHERE superseded_by IS NULL AND decision <> ?)",
            [annotator, Decision.SKIP],
        )
        return Progress(int(mine), int(total), int(labelled))
