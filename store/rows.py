"""Typed rows the store returns instead of tuples, and the JSON column codec."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

import duckdb

from common.vocab import ACTIVE_STATUSES, JobStatus, plain, values

# A job's or run's status, and those it ends in (entering one stamps ended_at).
STATUSES = values(JobStatus)
FINAL_STATUSES = plain(JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


def loads(value: str | None) -> Any:
    """Decode a DuckDB JSON column (returned as text); NULL stays None."""
    return None if value is None else json.loads(value)


def dumps(value: Any) -> str | None:
    """Encode a Python value for a JSON column; None stays NULL."""
    return None if value is None else json.dumps(value, ensure_ascii=False)


class StoredRow:
    """A row read as `SELECT COLUMNS FROM TABLE`; subclasses are frozen dataclasses with COLUMNS as fields."""

    TABLE: ClassVar[str]
    COLUMNS: ClassVar[str]  # the dataclass's fields, in order
    # JSON columns to decode; a factory (dict, list) stands in for NULL and empty values, None keeps them.
    JSON: ClassVar[dict[str, Callable[[], Any] | None]] = {}

    @classmethod
    def from_row(cls, row: tuple) -> Self:
        """The row of a `SELECT COLUMNS`, its JSON columns decoded."""
        by_column = dict(zip((c.strip() for c in cls.COLUMNS.split(",")), row, strict=True))
        for column, empty in cls.JSON.items():
            decoded = loads(by_column[column])
            by_column[column] = decoded if empty is None else (decoded or empty())
        return cls(**by_column)

    @classmethod
    def fetch_one(
        cls, cur: duckdb.DuckDBPyConnection, where: str, params: Sequence[Any] | None = None
    ) -> Self | None:
        """The first row of TABLE after `where` (a fixed clause; values are parameters), or None."""
        row = cur.execute(f"SELECT {cls.COLUMNS} FROM {cls.TABLE} {where}", params).fetchone()
        return None if row is None else cls.from_row(row)

    @classmethod
    def fetch_all(
        cls, cur: duckdb.DuckDBPyConnection, where: str = "", params: Sequence[Any] | None = None
    ) -> list[Self]:
        """Every row of TABLE after `where` (a fixed clause; values are parameters)."""
        rows = cur.execute(f"SELECT {cls.COLUMNS} FROM {cls.TABLE} {where}", params).fetchall()
        return [cls.from_row(r) for r in rows]


class StatusRow(StoredRow):
    """A row with a job's status lifecycle (jobs, runs): queued, running, then one of FINAL_STATUSES."""

    status: str

    @property
    def active(self) -> bool:
        """Still queued or running."""
        return self.status in ACTIVE_STATUSES

    @property
    def finished(self) -> bool:
        """Ended: done, failed or cancelled."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class ModelRow(StoredRow):
    """A model variant: a base plus ordered adapters, and/or an OpenAI-compatible endpoint that serves it."""

    id: int
    name: str
    base: str  # '' for a variant that exists only behind an endpoint
    adapters: list[str]
    kind: str
    fingerprint: str | None
    created_at: datetime
    endpoint: str | None = None
    served_model: str | None = None
    api_key_env: str | None = None  # the name of the variable holding the key, never the key
    revision: str | None = None
    lora_module: str | None = None

    TABLE = "models"
    COLUMNS = (
        "id, name, base, adapters, kind, fingerprint, created_at, "
        "endpoint, served_model, api_key_env, revision, lora_module"
    )
    JSON = {"adapters": list}

    @property
    def served(self) -> bool:
        """Whether generation goes through an inference server."""
        return bool(self.endpoint)

    @property
    def local(self) -> bool:
        """Whether the variant has local weights (for training and reference scoring)."""
        return bool(self.base)


@dataclass(frozen=True)
class PromptRow(StoredRow):
    """A prompt: chat messages plus its split and optional gold answer."""

    id: int
    content_hash: str
    messages: list[dict]
    source: str
    split: str
    gold: Any
    meta: dict | None
    created_at: datetime

    TABLE = "prompts"
    COLUMNS = "id, content_hash, messages, source, split, gold, meta, created_at"
    JSON = {"messages": None, "gold": None, "meta": None}


@dataclass(frozen=True)
class LabelRow(StoredRow):
    """One vote on a pair; `decision` names gen_a/gen_b, never screen sides."""

    id: int
    pair_id: int
    annotator: str
    source: str
    decision: str
    chosen_edit: str | None
    superseded_by: int | None
    created_at: datetime

    TABLE = "labels"
    COLUMNS = "id, pair_id, annotator, source, decision, chosen_edit, superseded_by, created_at"


@dataclass(frozen=True)
class TripleRow(StoredRow):
    """One training triple from the `preference_triples` view, with its provenance."""

    label_id: int
    pair_id: int
    prompt_id: int
    split: str
    prompt: list[dict]
    chosen: str
    rejected: str
    chosen_gen: int
    rejected_gen: int
    edited: bool
    source: str
    annotator: str
    decision: str
    created_at: datetime

    TABLE = "preference_triples"
    COLUMNS = (
        "label_id, pair_id, prompt_id, split, prompt, chosen, rejected, chosen_gen, rejected_gen, "
        "edited, source, annotator, decision, created_at"
    )
    JSON = {"prompt": None}


def status_update_sets(
    fields: tuple[tuple[str, Any], ...], *, status: str | None, result: dict | None
) -> tuple[list[str], list[Any]]:
    """SET clauses and parameters for a job's or run's given fields; the status stamps started_at or ended_at.

    Column names come from the callers' fixed tuples; values are parameters.
    """
    sets, args = [], []
    for column, value in fields:
        if value is not None:
            sets.append(f"{column} = ?")
            args.append(value)
    if result is not None:
        sets.append("result = ?")
        args.append(dumps(result))
    if status == JobStatus.RUNNING:
        sets.append("started_at = coalesce(started_at, current_timestamp)")
    if status in FINAL_STATUSES:
        sets.append("ended_at = current_timestamp")
    return sets, args
