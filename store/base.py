"""What the query mixins share: `Store`'s cursor and retried writes, one-statement reads, value checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from common.errors import StoreError

Params = Sequence[Any] | dict[str, Any] | None


def check(what: str, value: object, allowed: Sequence[str]) -> None:
    """Refuse a value outside `allowed` with a readable line (the schema's CHECK would say less)."""
    if value not in allowed:
        raise StoreError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def check_messages(messages: Any) -> None:
    """Refuse a prompt that is not a non-empty list of {role, content} dicts."""
    if not messages or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
        raise StoreError("a prompt's messages must be a non-empty list of {role, content} dicts")


def limit_param(limit: int | None) -> int:
    """The value for a `LIMIT ?`: no cap when `limit` is None."""
    return limit if limit is not None else 2**62


class QueryMixin:
    """Base of the query mixins; relies on `cursor()` and `write()` from `Store`."""

    cursor: Callable[[], duckdb.DuckDBPyConnection]
    write: Callable[..., Any]

    def _rows(self, sql: str, params: Params = None) -> list[tuple]:
        """Every row of one read on this thread's cursor."""
        return self.cursor().execute(sql, params).fetchall()

    def _row(self, sql: str, params: Params = None) -> tuple | None:
        """The first row of one read on this thread's cursor, or None."""
        return self.cursor().execute(sql, params).fetchone()

    def _frame(self, sql: str, params: Params = None):
        """One read on this thread's cursor as a pandas DataFrame."""
        return self.cursor().execute(sql, params).df()
