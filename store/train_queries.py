"""Queries for training: runs, their metrics, and the reference log-prob cache (`ref_logps`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from common.errors import StoreError
from common.vocab import JobStatus, MetricSplit, RunKind, values

from .base import QueryMixin, check
from .rows import FINAL_STATUSES, STATUSES, StatusRow, dumps, status_update_sets


@dataclass(frozen=True)
class RunRow(StatusRow):
    """A training run: its config, data snapshot hash, models and outcome."""

    id: int
    kind: str
    config: dict
    dataset_hash: str | None
    model_id: int | None
    ref_model_id: int | None
    status: str
    adapter_path: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    result: dict | None

    TABLE = "runs"
    COLUMNS = (
        "id, kind, config, dataset_hash, model_id, ref_model_id, status, adapter_path, created_at, started_at, "
        "ended_at, error, result"
    )
    JSON = {"config": dict, "result": None}


@dataclass(frozen=True)
class RefKey:
    """Everything a cached reference log-prob depends on, except the prompt and response themselves."""

    model_fingerprint: str
    template_hash: str
    max_length: int  # 0 stands for "no truncation": the column is NOT NULL
    truncation_mode: str


class TrainQueries(QueryMixin):
    """Runs, run metrics and reference log-probs."""

    add_model: Callable[..., Any]

    # -- runs -----------------------------------------------------------------------------------

    def create_run(
        self,
        kind: str,
        config: dict,
        *,
        dataset_hash: str | None,
        model_id: int | None,
        ref_model_id: int | None,
        status: str = JobStatus.QUEUED.value,
    ) -> RunRow:
        """Insert a run and return it."""
        check("run kind", kind, values(RunKind))
        check("run status", status, STATUSES)

        def insert(cur: duckdb.DuckDBPyConnection) -> int:
            return int(
                cur.execute(
                    "INSERT INTO runs (kind, config, dataset_hash, model_id, ref_model_id, status) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    [kind, dumps(config), dataset_hash, model_id, ref_model_id, status],
                ).fetchone()[0]
            )

        return self.get_run(self.write(insert))  # type: ignore[return-value]

    def update_run(
        self,
        run_id: int,
        *,
        status: str | None = None,
        adapter_path: str | None = None,
        error: str | None = None,
        result: dict | None = None,
    ) -> RunRow:
        """Set the given fields; 'running' stamps started_at, a final status ended_at."""
        return self._write_run(
            run_id, _run_update(run_id, status=status, adapter_path=adapter_path, error=error, result=result)
        )

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        error: str | None = None,
        adapter_path: str | None = None,
        result: dict | None = None,
        register: tuple[str, str, list[str], str] | None = None,
    ) -> RunRow:
        """Store a run's final row and register its variant `(name, base, adapters, kind)` in ONE transaction.

        A process killed in between would otherwise leave a registered variant whose run later reads failed.
        """
        check("final run status", status, FINAL_STATUSES)
        update = _run_update(run_id, status=status, adapter_path=adapter_path, error=error, result=result)
        return self._write_run(run_id, update, register)

    def _write_run(
        self,
        run_id: int,
        update: Callable[[duckdb.DuckDBPyConnection], None],
        register: tuple[str, str, list[str], str] | None = None,
    ) -> RunRow:
        """Run `update` (after registering the variant, if any) in one transaction; the run's row after it."""

        def apply(cur: duckdb.DuckDBPyConnection) -> None:
            if register is not None:
                self.add_model(*register)  # nested write: joins this transaction
            update(cur)

        self.write(apply)
        row = self.get_run(run_id)
        if row is None:
            raise StoreError(f"no run with id {run_id}")
        return row

    def get_run(self, run_id: int) -> RunRow | None:
        """The run with this id, or None."""
        return RunRow.fetch_one(self.cursor(), "WHERE id = ?", [run_id])

    def list_runs(self, *, kind: str | None = None, statuses: Sequence[str] | None = None) -> list[RunRow]:
        """Runs, oldest first (like the other lists), optionally of one kind and some statuses."""
        return RunRow.fetch_all(
            self.cursor(),
            "WHERE (? IS NULL OR kind = ?) AND (? IS NULL OR list_contains(?, status)) ORDER BY id",
            [kind, kind, None if statuses is None else list(statuses), list(statuses or [])],
        )

    # -- run metrics ----------------------------------------------------------------------------

    def add_run_metrics(self, run_id: int, rows: Iterable[tuple[int, str, str, float | None]]) -> int:
        """Upsert (step, split, name, value) rows of a run in one statement; returns how many."""
        latest: dict[tuple[int, str, str], float | None] = {}
        for step, split, name, value in rows:
            check("metric split", split, values(MetricSplit))
            latest[(int(step), split, str(name))] = None if value is None else float(value)
        if not latest:
            return 0
        keys = list(latest)

        def upsert(cur: duckdb.DuckDBPyConnection) -> None:
            # Lists in, one INSERT out: a row per execute would cost a round trip per metric.
            cur.execute(
                "INSERT INTO run_metrics (run_id, step, split, name, value) "
                "SELECT ?, unnest(?::BIGINT[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[]) "
                "ON CONFLICT (run_id, step, split, name) DO UPDATE SET value = excluded.value",
                [
                    run_id,
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [k[2] for k in keys],
                    [latest[k] for k in keys],
                ],
            )

        self.write(upsert)
        return len(keys)

    def run_metrics_frame(self, run_ids: Sequence[int]):
        """A DataFrame (run_id, step, split, name, value) of the given runs, ordered by run, step."""
        return self._frame(
            "SELECT run_id, step, split, name, value FROM run_metrics WHERE list_contains(?, run_id) "
            "ORDER BY run_id, step, split, name",
            [list(run_ids)],
        )

    # -- reference log-probs ----------------------------------------------------------------------

    def get_ref_logps(self, key: RefKey, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """Cached log-probs of (prompt_hash, response_hash) pairs under `key`; misses are absent."""
        if not pairs:
            return {}
        rows = self._cached_logps(
            "c.prompt_hash, c.response_hash, c.logp",
            pairs,
            "c.model_fingerprint = ? AND c.template_hash = ? AND c.max_length = ? AND c.truncation_mode = ?",
            [key.model_fingerprint, key.template_hash, key.max_length, key.truncation_mode],
        )
        return {(p, r): float(logp) for p, r, logp in rows}

    def ref_logps_any_model(
        self, pairs: Sequence[tuple[str, str]], max_length: int, truncation_mode: str
    ) -> list[tuple[str, str, str, str, float]]:
        """(model_fingerprint, template_hash, prompt_hash, response_hash, logp) of these pairs, for every model."""
        if not pairs:
            return []
        rows = self._cached_logps(
            "c.model_fingerprint, c.template_hash, c.prompt_hash, c.response_hash, c.logp",
            pairs,
            "c.max_length = ? AND c.truncation_mode = ?",
            [max_length, truncation_mode],
        )
        return [(f, t, p, r, float(v)) for f, t, p, r, v in rows]

    def _cached_logps(
        self, columns: str, pairs: Sequence[tuple[str, str]], where: str, params: list[Any]
    ) -> list[tuple]:
        """`columns` of the cache entries `c` for these (prompt_hash, response_hash) pairs that match `where`."""
        wanted = list(dict.fromkeys(pairs))
        return self._rows(
            "WITH wanted AS (SELECT unnest(?::VARCHAR[]) AS p, unnest(?::VARCHAR[]) AS r) "
            f"SELECT {columns} FROM ref_logps AS c "
            f"JOIN wanted ON c.prompt_hash = wanted.p AND c.response_hash = wanted.r WHERE {where}",
            [[p for p, _ in wanted], [r for _, r in wanted], *params],
        )

    def put_ref_logps(self, key: RefKey, rows: Iterable[tuple[str, str, float]]) -> int:
        """Store (prompt_hash, response_hash, logp) rows under `key`; existing entries are kept. Returns new rows."""
        unique = {(p, r): float(v) for p, r, v in rows}
        if not unique:
            return 0
        keys = list(unique)

        def insert(cur: duckdb.DuckDBPyConnection) -> int:
            before = cur.execute("SELECT count(*) FROM ref_logps").fetchone()[0]
            cur.execute(
                "INSERT INTO ref_logps (model_fingerprint, template_hash, max_length, truncation_mode, "
                "prompt_hash, response_hash, logp) "
                "SELECT ?, ?, ?, ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[]) "
                "ON CONFLICT DO NOTHING",
                [
                    key.model_fingerprint,
                    key.template_hash,
                    key.max_length,
                    key.truncation_mode,
                    [p for p, _ in keys],
                    [r for _, r in keys],
                    [unique[k] for k in keys],
                ],
            )
            return int(cur.execute("SELECT count(*) FROM ref_logps").fetchone()[0] - before)

        return self.write(insert)

    def count_ref_logps(self, model_fingerprint: str | None = None) -> int:
        """Cached reference log-probs, optionally of one model."""
        row = self._row(
            "SELECT count(*) FROM ref_logps WHERE ? IS NULL OR model_fingerprint = ?",
            [model_fingerprint, model_fingerprint],
        )
        return int(row[0])


def _run_update(
    run_id: int,
    *,
    status: str | None,
    adapter_path: str | None,
    error: str | None,
    result: dict | None,
) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """The UPDATE of a run's given fields, to run inside a write."""
    if status is not None:
        check("run status", status, STATUSES)
    sets, args = status_update_sets(
        (("status", status), ("adapter_path", adapter_path), ("error", error)),
        status=status,
        result=result,
    )
    if (
        status == JobStatus.RUNNING and error is None
    ):  # a resumed run has not failed (yet): its old error and end go
        sets.append("error = NULL, ended_at = NULL")

    def update(cur: duckdb.DuckDBPyConnection) -> None:
        # No UPDATE ... RETURNING: run_metrics references runs, and DuckDB then trips the FK check.
        if sets:  # column names come from the fixed tuple above; values are parameters
            cur.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", [*args, run_id])

    return update
