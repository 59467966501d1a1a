"""Queries for the judge's bookkeeping: failed pairs with their next-retry time, and pairs due for judging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .base import QueryMixin, limit_param


def _stamp(epoch: float | None) -> datetime | None:
    """Epoch seconds as the naive UTC TIMESTAMP the table stores."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def _epoch(stamp: datetime | None) -> float | None:
    return None if stamp is None else stamp.replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class JudgeFailureRow:
    """How often a judge failed on a pair, its last error, and when it may be sent again (epoch seconds)."""

    pair_id: int
    attempts: int
    error: str
    next_retry_at: float | None  # None: not retried automatically any more


class JudgeQueries(QueryMixin):
    """Judge failures. Times are epoch seconds."""

    def judge_failure(
        self, pair_id: int, judge: str, model: str | None, rubric_hash: str
    ) -> JudgeFailureRow | None:
        """The recorded failure of this judge, model and rubric on a pair, if any."""
        row = self._row(
            "SELECT pair_id, attempts, error, next_retry_at FROM judge_failures "
            "WHERE pair_id = ? AND judge = ? AND model = ? AND rubric_hash = ?",
            [pair_id, judge, model or "", rubric_hash],
        )
        return None if row is None else JudgeFailureRow(int(row[0]), int(row[1]), row[2], _epoch(row[3]))

    def record_judge_failure(
        self,
        pair_id: int,
        judge: str,
        model: str | None,
        rubric_hash: str,
        *,
        attempts: int,
        error: str,
        next_retry_at: float | None,
    ) -> None:
        """Store (or replace) the failure of this judge on a pair."""
        self.write(
            lambda cur: cur.execute(
                "INSERT INTO judge_failures (pair_id, judge, model, rubric_hash, attempts, error, next_retry_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pair_id, judge, model, rubric_hash) DO UPDATE SET "
                "attempts = excluded.attempts, error = excluded.error, next_retry_at = excluded.next_retry_at, "
                "updated_at = excluded.updated_at",
                [pair_id, judge, model or "", rubric_hash, attempts, error, _stamp(next_retry_at)],
            )
        )

    def clear_judge_failure(self, pair_id: int, judge: str, model: str | None, rubric_hash: str) -> None:
        """Forget a failure once the pair has its verdicts."""
        self.write(
            lambda cur: cur.execute(
                "DELETE FROM judge_failures WHERE pair_id = ? AND judge = ? AND model = ? AND rubric_hash = ?",
                [pair_id, judge, model or "", rubric_hash],
            )
        )

    def pairs_due_for_judging(
        self, judge: str, model: str | None, rubric_hash: str, *, now: float, limit: int | None = None
    ) -> list[int]:
        """Pairs without a verdict from this judge whose failure (if any) may be retried by `now`, oldest first."""
        rows = self._rows(
            "SELECT p.id FROM pairs p WHERE NOT EXISTS (SELECT 1 FROM judge_verdicts v WHERE v.pair_id = p.id "
            "AND v.judge = ? AND v.model IS NOT DISTINCT FROM ? AND v.rubric_hash = ?) "
            "AND NOT EXISTS (SELECT 1 FROM judge_failures f WHERE f.pair_id = p.id AND f.judge = ? "
            "AND f.model = ? AND f.rubric_hash = ? AND (f.next_retry_at IS NULL OR f.next_retry_at > ?)) "
            "ORDER BY p.id LIMIT ?",
            [judge, model, rubric_hash, judge, model or "", rubric_hash, _stamp(now), limit_param(limit)],
        )
        return [int(r[0]) for r in rows]
