"""The DuckDB store: opening, the file lock, per-thread cursors and retried write transactions."""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb

from common.errors import MigrationError, StoreError, StoreLockedError

from . import migrate
from .arena_queries import ArenaQueries
from .data_queries import DataQueries
from .eval_queries import EvalQueries
from .import_queries import ImportQueries
from .judge_queries import JudgeQueries
from .queries import Queries
from .queue_queries import QueueQueries
from .stats_queries import StatsQueries
from .train_queries import TrainQueries
from .work_queries import WorkQueries

log = logging.getLogger(__name__)

T = TypeVar("T")

# The counts `stats` shows; identifiers come from this constant, never from callers.
COUNTED = (
    "prompts",
    "pairs",
    "generations",
    "labels",
    "preference_triples",
    "judge_verdicts",
    "runs",
    "battles",
    "models",
)

_IO_HINT = (
    "this change was not stored (earlier work is kept); free disk space or check the home folder, then retry"
)

_PID = re.compile(r"\(PID (\d+)\)")
_HOLDER_EXE = re.compile(r"lock is held in (.+?) \(PID")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cmdline(pid: int) -> str | None:
    """The holder's program name from /proc; never its arguments (they may hold `--auth USER:PASS`)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    argv = [a for a in raw.decode("utf-8", "replace").split("\0") if a]
    if not argv:
        return None
    program = Path(argv[0]).name.replace("\n", " ")[:60]
    # A fixed word chosen from the arguments, never the arguments themselves.
    return f"{program}, serving the UI" if "serve" in argv[1:] else program


def locked_error(path: str, exc: duckdb.Error) -> StoreLockedError:
    """Turn DuckDB's lock IOException into one line naming the holding process (program name and PID only)."""
    message = str(exc)
    pid_match = _PID.search(message)
    pid = int(pid_match.group(1)) if pid_match else None
    if pid is None:
        holder = "another process"
    else:
        exe = _HOLDER_EXE.search(message)
        what = _cmdline(pid) or (Path(exe.group(1)).name if exe else "unknown program")
        holder = f"another PrefLab process (PID {pid}: {what})"
    err = StoreLockedError(f"database {path} is held by {holder}; stop it or use the UI")
    err.holder_pid = pid
    return err


def is_retryable(exc: BaseException) -> bool:
    """DuckDB's optimistic concurrency: a write-write conflict, or a commit that lost a race."""
    if not isinstance(exc, duckdb.TransactionException):
        return False
    text = str(exc)
    return "Conflict" in text or "Failed to commit" in text


def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass  # DuckDB already ended the transaction when the statement or commit failed


class Store(
    Queries,
    WorkQueries,
    JudgeQueries,
    QueueQueries,
    ImportQueries,
    StatsQueries,
    TrainQueries,
    ArenaQueries,
    DataQueries,
    EvalQueries,
):
    """The one DuckDB database; every thread gets its own cursor."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, path: Path | str, *, read_only: bool) -> None:
        """Wrap an open connection; use `Store.open` instead."""
        self.path = path
        self.read_only = read_only
        self._conn = conn
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._rng = random.Random()  # backoff jitter only; nothing recorded depends on it

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        read_only: bool = False,
        migrations_dir: str | Path | None = None,
    ) -> Store:
        """Connect to `path` (creating its folder) and bring the schema up to date."""
        memory = str(path) == ":memory:"
        target: Path | str = ":memory:" if memory else Path(path).expanduser().resolve()
        if isinstance(target, Path):
            if read_only and not target.exists():
                raise StoreError(f"database {target} does not exist; open it read-write once to create it")
            target.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = duckdb.connect(str(target), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise locked_error(str(target), exc) from exc
            raise StoreError(f"cannot open database {target}: {_first_line(exc)}") from exc
        except duckdb.Error as exc:
            raise StoreError(f"cannot open database {target}: {_first_line(exc)}") from exc
        store = cls(conn, target, read_only=read_only)
        try:
            store._migrate(Path(migrations_dir) if migrations_dir else migrate.MIGRATIONS_DIR)
        except BaseException:
            store.close()
            raise
        return store

    def _migrate(self, directory: Path) -> None:
        """Apply pending migrations; read-only opens only check them."""
        if not self.read_only:
            applied = migrate.apply_all(self._conn, directory)
            if applied:
                log.info("database %s: applied %d migration(s)", self.path, len(applied))
            return
        todo = migrate.pending(self._conn, directory)
        if todo:
            raise MigrationError(
                f"database {self.path} lacks migration {todo[0].filename}; open it read-write once to apply it"
            )

    def close(self) -> None:
        """Close every cursor and the connection; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            cursors, self._cursors = self._cursors, []
        for cur in cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor: DuckDB connections must not be shared across threads."""
        if self._closed:
            raise StoreError(f"database {self.path} is closed")
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            with self._lock:
                if self._closed:
                    raise StoreError(f"database {self.path} is closed")
                cur = self._conn.cursor()
                self._cursors.append(cur)
            self._local.cursor = cur
            self._local.depth = 0
        return cur

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction on this thread's cursor, without retry (prefer `write`)."""
        cur = self.cursor()
        if self._local.depth:
            yield cur  # nested: the outer transaction commits or rolls back
            return
        cur.execute("BEGIN TRANSACTION")
        self._local.depth = 1
        try:
            yield cur
        except BaseException:
            _rollback(cur)
            raise
        else:
            try:
                cur.execute("COMMIT")
            except BaseException:
                _rollback(cur)
                raise
        finally:
            self._local.depth = 0

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T], *, attempts: int = 6) -> T:
        """Run `fn(cursor)` in a transaction, re-running it on a write-write conflict."""
        if getattr(self._local, "depth", 0):
            return fn(self.cursor())  # inside an outer write: its retry covers us
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as cur:
                    return fn(cur)
            except duckdb.IOException as exc:
                # Disk full, a vanished file, a read-only mount: the transaction rolled back, so nothing of it
                # was stored and every earlier commit is intact. One line, never a bare "Error".
                raise StoreError(f"could not save to the database: {_first_line(exc)}; {_IO_HINT}") from exc
            except duckdb.FatalException as exc:  # DuckDB refuses every write after a failed checkpoint/WAL
                raise StoreError(
                    f"the database stopped accepting changes: {_first_line(exc)}; restart PrefLab "
                    "(everything saved before is kept)"
                ) from exc
            except duckdb.TransactionException as exc:
                if not is_retryable(exc):
                    raise
                if attempt == attempts:
                    raise StoreError(
                        f"database {self.path} stayed busy: write conflict after {attempts} attempts"
                    ) from exc
                delay = 0.005 * 2**attempt * (1 + self._rng.random())
                log.debug("write conflict (attempt %d/%d), retrying in %.3fs", attempt, attempts, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def tables(self) -> list[str]:
        """Names of the user tables, sorted."""
        rows = self.cursor().execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main' ORDER BY 1"
        )
        return [name for (name,) in rows.fetchall()]

    def views(self) -> list[str]:
        """Names of the user views, sorted."""
        rows = self.cursor().execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = 'main' ORDER BY 1"
        )
        return [name for (name,) in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        """Row counts for `stats`, read in one snapshot."""
        select = ", ".join(f"(SELECT count(*) FROM {name}) AS {name}" for name in COUNTED)
        row = self.cursor().execute(f"SELECT {select}").fetchone()
        return dict(zip(COUNTED, (int(n) for n in row), strict=True))

    def applied_migrations(self) -> list[tuple[int, str]]:
        """(version, name) of every applied migration, in order."""
        rows = self.cursor().execute("SELECT version, name FROM schema_migrations ORDER BY version")
        return [(int(v), n) for v, n in rows.fetchall()]
