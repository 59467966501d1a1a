"""Numbered SQL migrations: find them, check the applied ones, apply the rest."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from common.errors import MigrationError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")
_NEVER_EDIT = "never edit an applied migration: restore it and add the change as the next number"

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    sha256     VARCHAR NOT NULL,
    applied_at TIMESTAMP DEFAULT current_timestamp
)
"""


@dataclass(frozen=True)
class Migration:
    """One `NNNN_name.sql` file."""

    version: int
    name: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    """The migration files in `directory`, by version; a misnamed or duplicate file is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"migrations {found[version].filename} and {path.name} share version {version:04d}"
            )
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def _applied(cur: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, str]]:
    rows = cur.execute("SELECT version, name, sha256 FROM schema_migrations ORDER BY version").fetchall()
    return {version: (name, sha) for version, name, sha in rows}


def _has_table(cur: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = cur.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def pending(cur: duckdb.DuckDBPyConnection, directory: Path) -> list[Migration]:
    """Check every applied migration against its file and return those not applied yet."""
    files = discover(directory)
    applied = _applied(cur) if _has_table(cur, "schema_migrations") else {}
    by_version = {m.version: m for m in files}
    for version, (name, sha) in applied.items():
        mig = by_version.get(version)
        if mig is None:
            raise MigrationError(
                f"applied migration {version:04d}_{name}.sql is missing from {directory}; {_NEVER_EDIT}"
            )
        if mig.sha256() != sha:
            raise MigrationError(f"applied migration {mig.path} has changed on disk; {_NEVER_EDIT}")
    todo = [m for m in files if m.version not in applied]
    top = max(applied, default=0)
    for mig in todo:
        if mig.version < top:
            raise MigrationError(
                f"migration {mig.filename} is numbered below the applied {top:04d}; "
                f"rename it to {top + 1:04d}_{mig.name}.sql"
            )
    return todo


def apply_all(cur: duckdb.DuckDBPyConnection, directory: Path) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied."""
    cur.execute(_BOOTSTRAP)
    todo = pending(cur, directory)
    for mig in todo:
        _apply(cur, mig)
    return todo


def _apply(cur: duckdb.DuckDBPyConnection, mig: Migration) -> None:
    """Run one file and record it atomically, so a failure leaves nothing half-applied."""
    sql, sha = mig.sql(), mig.sha256()
    cur.execute("BEGIN TRANSACTION")
    try:
        cur.execute(sql)
        cur.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES (?, ?, ?)",
            [mig.version, mig.name, sha],
        )
        cur.execute("COMMIT")
    except duckdb.Error as exc:
        try:
            cur.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the failed statement may already have ended the transaction
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MigrationError(f"migration {mig.path} failed and was rolled back: {first_line}") from exc
    log.info("applied migration %s", mig.filename)
