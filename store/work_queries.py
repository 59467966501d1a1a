"""Queries for background work: jobs, resumable generation cells, pairs and judge verdicts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from common.vocab import ACTIVE_STATUSES, JobKind, JobStatus, values

from .base import QueryMixin, check, limit_param
from .rows import STATUSES, PromptRow, StatusRow, StoredRow, dumps, loads, status_update_sets


@dataclass(frozen=True)
class JobRow(StatusRow):
    """A background job and how far it got."""

    id: int
    kind: str
    params: dict
    status: str
    progress: int
    total: int | None
    error: str | None
    result: dict | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    TABLE = "jobs"
    COLUMNS = "id, kind, params, status, progress, total, error, result, created_at, started_at, ended_at"
    JSON = {"params": dict, "result": None}


@dataclass(frozen=True)
class NewGeneration:
    """A response to store, keyed by its generation cell."""

    prompt_id: int
    cell: str
    text: str
    params: dict
    seed: int
    n_tokens: int
    seconds: float


@dataclass(frozen=True)
class PairView:
    """Everything the Annotate tab shows for one pair, before screen sides are chosen."""

    pair_id: int
    prompt_id: int
    messages: list[dict]
    gold: Any
    gen_a: int
    gen_b: int
    text_a: str
    text_b: str


@dataclass(frozen=True)
class VerdictRow(StoredRow):
    """One judge verdict in one presentation order; winner names gen_a/gen_b."""

    pair_id: int
    judge: str
    model: str | None
    rubric_hash: str
    position_order: str
    winner: str | None
    rationale: str | None
    confidence: float | None
    usage: dict | None
    batch_id: str | None = None

    TABLE = "judge_verdicts"
    COLUMNS = (
        "pair_id, judge, model, rubric_hash, position_order, winner, rationale, confidence, usage, batch_id"
    )
    JSON = {"usage": None}


class WorkQueries(QueryMixin):
    """Jobs, generation cells, pairs and verdicts; relies on `add_pair` of `Queries` too."""

    add_pair: Callable[[int, int, int], int]

    # -- jobs ---------------------------------------------------------------------------------

    def create_job(self, kind: str, params: dict, *, total: int | None = None) -> int:
        """Queue a job and return its id."""
        check("job kind", kind, values(JobKind))
        return self.write(
            lambda cur: int(
                cur.execute(
                    "INSERT INTO jobs (kind, params, total) VALUES (?, ?, ?) RETURNING id",
                    [kind, dumps(params), total],
                ).fetchone()[0]
            )
        )

    def update_job(
        self,
        job_id: int,
        *,
        status: str | None = None,
        progress: int | None = None,
        total: int | None = None,
        error: str | None = None,
        result: dict | None = None,
    ) -> None:
        """Set the given fields; entering 'running' stamps started_at, a final status ended_at."""
        if status is not None:
            check("job status", status, STATUSES)
        sets, args = status_update_sets(
            (("status", status), ("progress", progress), ("total", total), ("error", error)),
            status=status,
            result=result,
        )
        if not sets:
            return
        # Column names come from the fixed tuple above; values are parameters.
        self.write(
            lambda cur: cur.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", [*args, job_id])
        )

    def get_job(self, job_id: int) -> JobRow | None:
        return JobRow.fetch_one(self.cursor(), "WHERE id = ?", [job_id])

    def latest_job(self, kind: str) -> JobRow | None:
        """The newest job of a kind."""
        return JobRow.fetch_one(self.cursor(), "WHERE kind = ? ORDER BY id DESC LIMIT 1", [kind])

    def jobs_with_status(self, kind: str, statuses: Sequence[str]) -> list[JobRow]:
        """Jobs of a kind in any of the statuses, oldest first."""
        marks = ", ".join("?" for _ in statuses)
        return JobRow.fetch_all(
            self.cursor(), f"WHERE kind = ? AND status IN ({marks}) ORDER BY id", [kind, *statuses]
        )

    def mark_interrupted(self) -> dict[str, int]:
        """On open: runs and non-generate jobs left queued/running belong to a process that died; fail them.

        Whoever runs a job or an SFT/DPO run holds the database until it ends (the DPO worker's parent does),
        so a process that could open the database cannot be racing a live one. Generation jobs are left
        alone: the serving process resumes them where they stopped.
        """

        def update(cur: duckdb.DuckDBPyConnection) -> dict[str, int]:
            reason = "interrupted: the process running it stopped"
            active = ", ".join("?" for _ in ACTIVE_STATUSES)
            runs = cur.execute(
                f"SELECT count(*) FROM runs WHERE status IN ({active})", [*ACTIVE_STATUSES]
            ).fetchone()[0]
            cur.execute(
                "UPDATE runs SET status = ?, error = coalesce(error, ?), ended_at = current_timestamp "
                f"WHERE status IN ({active})",
                [JobStatus.FAILED, reason, *ACTIVE_STATUSES],
            )
            jobs = cur.execute(
                f"SELECT count(*) FROM jobs WHERE status IN ({active}) AND kind <> ?",
                [*ACTIVE_STATUSES, JobKind.GENERATE],
            ).fetchone()[0]
            cur.execute(
                "UPDATE jobs SET status = ?, error = coalesce(error, ?), ended_at = current_timestamp "
                f"WHERE status IN ({active}) AND kind <> ?",
                [JobStatus.FAILED, reason, *ACTIVE_STATUSES, JobKind.GENERATE],
            )
            return {"runs": int(runs), "jobs": int(jobs)}

        return self.write(update)

    # -- prompts and generation cells ----------------------------------------------------------

    def list_prompts(self, *, split: str | None = None, limit: int | None = None) -> list[PromptRow]:
        """Prompts in insertion order, optionally of one split and capped."""
        return PromptRow.fetch_all(
            self.cursor(),
            "WHERE ? IS NULL OR split = ? ORDER BY id LIMIT ?",
            [split, split, limit_param(limit)],
        )

    def done_cells(self, model_id: int, prompt_ids: Sequence[int]) -> dict[tuple[int, str], int]:
        """(prompt_id, cell) -> generation id for the cells of these prompts already generated."""
        if not prompt_ids:
            return {}
        rows = self._rows(
            "SELECT prompt_id, cell, min(id) FROM generations "
            "WHERE model_id = ? AND cell IS NOT NULL AND list_contains(?, prompt_id) GROUP BY ALL",
            [model_id, list(prompt_ids)],
        )
        return {(int(p), c): int(g) for p, c, g in rows}

    def add_generations(self, model_id: int, items: Sequence[NewGeneration]) -> list[int]:
        """Store a batch of responses in one transaction; a cell already stored is not stored twice."""

        def insert(cur: duckdb.DuckDBPyConnection) -> list[int]:
            ids = []
            for g in items:
                existing = cur.execute(
                    "SELECT id FROM generations WHERE model_id = ? AND prompt_id = ? AND cell = ?",
                    [model_id, g.prompt_id, g.cell],
                ).fetchone()
                if existing:
                    ids.append(int(existing[0]))
                    continue
                row = cur.execute(
                    "INSERT INTO generations (prompt_id, model_id, params, seed, text, n_tokens, seconds, cell) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    [g.prompt_id, model_id, dumps(g.params), g.seed, g.text, g.n_tokens, g.seconds, g.cell],
                ).fetchone()
                ids.append(int(row[0]))
            return ids

        return self.write(insert)

    def generation_texts(self, ids: Sequence[int]) -> dict[int, str]:
        """id -> text of these generations."""
        rows = self._rows("SELECT id, text FROM generations WHERE list_contains(?, id)", [list(ids)])
        return {int(i): t for i, t in rows}

    def add_pair_if_new(self, prompt_id: int, gen_a: int, gen_b: int) -> int | None:
        """Pair two responses unless that pair (in either order) exists; returns the new id or None."""

        def insert(cur: duckdb.DuckDBPyConnection) -> int | None:
            exists = cur.execute(
                "SELECT 1 FROM pairs WHERE (gen_a = ? AND gen_b = ?) OR (gen_a = ? AND gen_b = ?)",
                [gen_a, gen_b, gen_b, gen_a],
            ).fetchone()
            if exists:
                return None
            return self.add_pair(prompt_id, gen_a, gen_b)  # nested write: joins this transaction

        return self.write(insert)

    def generation_stats(self, model_id: int) -> dict[str, float]:
        """Tokens, seconds and count of a variant's stored generations (for tok/s reports)."""
        n, tokens, seconds = self._row(
            "SELECT count(*), coalesce(sum(n_tokens), 0), coalesce(sum(seconds), 0) "
            "FROM generations WHERE model_id = ?",
            [model_id],
        )
        return {"generations": int(n), "tokens": int(tokens), "seconds": float(seconds)}

    # -- pairs and verdicts --------------------------------------------------------------------

    def get_pair_view(self, pair_id: int) -> PairView | None:
        """The pair with its prompt and both texts."""
        row = self._row(
            "SELECT p.id, p.prompt_id, pr.messages, pr.gold, p.gen_a, p.gen_b, ga.text, gb.text "
            "FROM pairs p JOIN prompts pr ON pr.id = p.prompt_id "
            "JOIN generations ga ON ga.id = p.gen_a JOIN generations gb ON gb.id = p.gen_b WHERE p.id = ?",
            [pair_id],
        )
        if row is None:
            return None
        values = list(row)
        values[2], values[3] = loads(values[2]), loads(values[3])
        return PairView(*values)

    def pairs_without_verdict(
        self, judge: str, model: str | None, rubric_hash: str, *, limit: int | None = None
    ) -> list[int]:
        """Ids of pairs with no verdict yet from this judge, model and rubric, oldest first."""
        rows = self._rows(
            "SELECT p.id FROM pairs p WHERE NOT EXISTS (SELECT 1 FROM judge_verdicts v WHERE v.pair_id = p.id "
            "AND v.judge = ? AND v.model IS NOT DISTINCT FROM ? AND v.rubric_hash = ?) ORDER BY p.id LIMIT ?",
            [judge, model, rubric_hash, limit_param(limit)],
        )
        return [int(r[0]) for r in rows]

    def pairs_with_verdict(self, judge: str, model: str | None, rubric_hash: str) -> list[int]:
        """Ids of pairs this judge, model and rubric has judged, oldest first."""
        rows = self._rows(
            "SELECT DISTINCT pair_id FROM judge_verdicts WHERE judge = ? AND model IS NOT DISTINCT FROM ? "
            "AND rubric_hash = ? ORDER BY pair_id",
            [judge, model, rubric_hash],
        )
        return [int(r[0]) for r in rows]

    def add_verdicts(self, verdicts: Sequence[VerdictRow]) -> None:
        """Store verdicts (both orders of a pair together) in one transaction."""

        def insert(cur: duckdb.DuckDBPyConnection) -> None:
            for v in verdicts:
                cur.execute(
                    "INSERT INTO judge_verdicts (pair_id, judge, model, rubric_hash, position_order, winner, "
                    "rationale, confidence, usage, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        v.pair_id,
                        v.judge,
                        v.model,
                        v.rubric_hash,
                        v.position_order,
                        v.winner,
                        v.rationale,
                        v.confidence,
                        dumps(v.usage),
                        v.batch_id,
                    ],
                )

        self.write(insert)

    def verdicts_for_pair(
        self, pair_id: int, judge: str, model: str | None, rubric_hash: str
    ) -> list[VerdictRow]:
        """The latest verdict per order for a pair from this judge, model and rubric."""
        return VerdictRow.fetch_all(
            self.cursor(),
            "WHERE pair_id = ? AND judge = ? AND model IS NOT DISTINCT FROM ? AND rubric_hash = ? "
            "QUALIFY row_number() OVER (PARTITION BY position_order ORDER BY id DESC) = 1 ORDER BY position_order",
            [pair_id, judge, model, rubric_hash],
        )
