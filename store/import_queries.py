"""Bulk prompt import: a whole file's prompts in one transaction, deduplicated by content hash."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import duckdb

from errors import StoreError

from .queries import SPLITS, content_hash
from .rows import dumps

log = logging.getLogger(__name__)

T = TypeVar("T")

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


class ImportQueries:
    """Bulk inserts of prompts; relies on `write()` from `Store`."""

    def write(
        self, fn: Callable[[duckdb.DuckDBPyConnection], T], *, attempts: int = 6
    ) -> T:  # pragma: no cover - provided by Store
        raise NotImplementedError

    def add_prompts_bulk(self, rows: Sequence[NewPrompt], *, source: str) -> ImportCounts:
        """Insert every new prompt in one transaction; repeats (in the file or stored) count as duplicates."""
        unique: dict[str, NewPrompt] = {}
        for row in rows:
            if row.split not in SPLITS:
                raise StoreError(f"split must be one of {', '.join(SPLITS)}; got {row.split!r}")
            if not row.messages or not all(
                isinstance(m, dict) and "role" in m and "content" in m for m in row.messages
            ):
                raise StoreError("a prompt's messages must be a non-empty list of {role, content} dicts")
            unique.setdefault(row.content_hash, row)  # the first occurrence in the file wins
        if not unique:
            return ImportCounts(0, len(rows), {})

        import pyarrow as pa

        kept = list(unique.values())
        staged = pa.table(
            {
                "ord": pa.array(range(len(kept)), pa.int64()),
                "content_hash": [r.content_hash for r in kept],
                "messages": [dumps(r.messages) for r in kept],
                "split": [r.split for r in kept],
                "gold": pa.array([dumps(r.gold) for r in kept], pa.string()),
                "meta": pa.array([dumps(r.meta) for r in kept], pa.string()),
            }
        )

        def insert(cur: duckdb.DuckDBPyConnection) -> list[str]:
            cur.register(_STAGING, staged)
            try:
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
            finally:
                cur.unregister(_STAGING)
            return [split for (split,) in inserted]

        splits = self.write(insert)
        counts = ImportCounts(len(splits), len(rows) - len(splits), dict(Counter(splits)))
        log.info(
            "imported %d prompt(s) from %s (%d duplicate(s))", counts.inserted, source, counts.duplicates
        )
        return counts
