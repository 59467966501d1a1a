"""Bulk prompt import (one transaction, deduplicated by content hash); the staging every bulk import uses."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from .base import QueryMixin, check, check_messages
from .queries import SPLITS, content_hash
from .rows import dumps

log = logging.getLogger(__name__)

# Registered per cursor (so per thread) and removed after use; never a caller's string.
_STAGING = "preflab_import_rows"


@dataclass(frozen=True)
class NewPrompt:
    """A prompt to import; its content hash is computed once, here."""

    messages: list[dict]
    split: str
    gold: Any = None
    meta: dict | None = None
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_hash", content_hash(self.messages))


@dataclass(frozen=True)
class ImportCounts:
    """What a bulk import did: rows inserted (per split) and rows skipped as duplicates."""

    inserted: int
    duplicates: int
    by_split: dict[str, int]


def json_column(values: Sequence[Any]):
    """An Arrow column of JSON text, typed so that a column of NULLs is still text."""
    import pyarrow as pa  # only bulk imports need it

    return pa.array([dumps(v) for v in values], pa.string())


def staging_table(rows: Sequence[Any], **columns: Any):
    """The Arrow table a bulk import registers: file order, the prompt's columns, then `columns`.

    `rows` carry content_hash, messages, split and meta (`NewPrompt`, `NewPreference`).
    """
    import pyarrow as pa

    return pa.table(
        {
            "ord": pa.array(range(len(rows)), pa.int64()),
            "content_hash": [r.content_hash for r in rows],
            "messages": [dumps(r.messages) for r in rows],
            "split": [r.split for r in rows],
            "meta": json_column([r.meta for r in rows]),
            **columns,
        }
    )


@contextlib.contextmanager
def registered(cur: duckdb.DuckDBPyConnection, name: str, table: Any) -> Iterator[None]:
    """`table` visible as `name` on this cursor (so this thread) until the block ends."""
    cur.register(name, table)
    try:
        yield
    finally:
        cur.unregister(name)


class ImportQueries(QueryMixin):
    """Bulk inserts of prompts."""

    def add_prompts_bulk(self, rows: Sequence[NewPrompt], *, source: str) -> ImportCounts:
        """Insert every new prompt in one transaction; repeats (in the file or stored) count as duplicates."""
        unique: dict[str, NewPrompt] = {}
        for row in rows:
            check("split", row.split, SPLITS)
            check_messages(row.messages)
            unique.setdefault(row.content_hash, row)  # the first occurrence in the file wins
        if not unique:
            return ImportCounts(0, len(rows), {})

        kept = list(unique.values())
        staged = staging_table(kept, gold=json_column([r.gold for r in kept]))

        def insert(cur: duckdb.DuckDBPyConnection) -> list[str]:
            with registered(cur, _STAGING, staged):
                # The anti-join keeps stored prompts from burning sequence ids; ON CONFLICT still
                # covers a prompt another thread committed after our snapshot began.
                inserted = cur.execute(
                    "INSERT INTO prompts (content_hash, messages, source, split, gold, meta) "
                    "SELECT s.content_hash, s.messages::JSON, ?, s.split, s.gold::JSON, s.meta::JSON "
                    f"FROM {_STAGING} AS s "
                    "WHERE NOT EXISTS (SELECT 1 FROM prompts AS p WHERE p.content_hash = s.content_hash) "
                    "ORDER BY s.ord "
                    "ON CONFLICT (content_hash) DO NOTHING RETURNING split",
                    [source],
                ).fetchall()
            return [split for (split,) in inserted]

        splits = self.write(insert)
        counts = ImportCounts(len(splits), len(rows) - len(splits), dict(Counter(splits)))
        log.info(
            "imported %d prompt(s) from %s (%d duplicate(s))", counts.inserted, source, counts.duplicates
        )
        return counts
