"""The schema: every table and view of DESIGN.md, and migrations that are safe to re-run."""

from pathlib import Path

import duckdb
import pytest

from common.errors import MigrationError, StoreError
from store import Store
from store.migrate import MIGRATIONS_DIR

DESIGN_TABLES = {
    "prompts",
    "models",
    "generations",
    "jobs",
    "pairs",
    "assignments",
    "judge_verdicts",
    "labels",
    "runs",
    "run_metrics",
    "ref_logps",
    "battles",
    "eval_runs",
    "eval_scores",
    "schema_migrations",
}
# Tables later migrations add beyond DESIGN.md's data model.
LATER_TABLES = {"review_queue", "arena_matchups", "judge_failures"}


def test_fresh_database_has_the_whole_data_model(db_path: Path):
    assert not db_path.parent.exists()
    with Store.open(db_path) as store:
        assert set(store.tables()) == DESIGN_TABLES | LATER_TABLES
        assert store.views() == ["preference_triples"]
        shipped = sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
        assert store.applied_migrations() == [(int(f.name[:4]), f.stem[5:]) for f in shipped]
        assert set(store.counts().values()) == {0}
    assert db_path.is_file()


def test_reopening_applies_nothing_new(db_path: Path):
    Store.open(db_path).close()
    with Store.open(db_path) as store:
        store.add_prompt([{"role": "user", "content": "kept"}], "test", "train")
    with Store.open(db_path) as store:
        rows = store.cursor().execute("SELECT version, count(*) FROM schema_migrations GROUP BY 1 ORDER BY 1")
        shipped = sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
        assert rows.fetchall() == [(int(f.name[:4]), 1) for f in shipped]
        assert store.counts()["prompts"] == 1  # reopening did not recreate the tables


def test_an_edited_applied_migration_is_refused(db_path: Path, migrations: Path):
    Store.open(db_path, migrations_dir=migrations).close()
    initial = migrations / "0001_initial.sql"
    initial.write_text(initial.read_text() + "\nCREATE TABLE sneaky (x INTEGER);\n")
    with pytest.raises(MigrationError) as info:
        Store.open(db_path, migrations_dir=migrations)
    message = str(info.value)
    assert "\n" not in message
    assert "0001_initial.sql" in message
    assert "never edit an applied migration" in message
    assert "next number" in message


def test_a_missing_applied_migration_is_refused(db_path: Path, migrations: Path):
    Store.open(db_path, migrations_dir=migrations).close()
    (migrations / "0001_initial.sql").unlink()
    with pytest.raises(MigrationError, match=r"0001_initial\.sql is missing"):
        Store.open(db_path, migrations_dir=migrations)


def test_a_new_migration_is_applied_on_the_next_open(db_path: Path, migrations: Path):
    with Store.open(db_path, migrations_dir=migrations) as store:
        store.add_prompt([{"role": "user", "content": "before 0002"}], "test", "heldout")
    (migrations / "0002_prompt_tags.sql").write_text(
        "CREATE TABLE prompt_tags (prompt_id BIGINT REFERENCES prompts (id), tag VARCHAR NOT NULL);\n"
        "INSERT INTO prompt_tags SELECT id, 'legacy' FROM prompts;\n"
    )
    with Store.open(db_path, migrations_dir=migrations) as store:
        assert "prompt_tags" in store.tables()
        assert store.applied_migrations() == [(1, "initial"), (2, "prompt_tags")]
        assert store.cursor().execute("SELECT count(*) FROM prompt_tags").fetchone() == (1,)
    with Store.open(db_path, migrations_dir=migrations) as store:
        assert len(store.applied_migrations()) == 2


def test_a_failing_migration_rolls_back_completely(db_path: Path, migrations: Path):
    Store.open(db_path, migrations_dir=migrations).close()
    broken = migrations / "0002_broken.sql"
    broken.write_text(
        "CREATE TABLE half_done (x INTEGER);\n"
        "INSERT INTO half_done VALUES (1);\n"
        "ALTER TABLE prompts ADD COLUMN lang VARCHAR;\n"
        "SELECT * FROM no_such_table;\n"
    )
    with pytest.raises(MigrationError) as info:
        Store.open(db_path, migrations_dir=migrations)
    assert "0002_broken.sql" in str(info.value)
    assert "\n" not in str(info.value)

    raw = duckdb.connect(str(db_path))  # look behind the store's back: nothing may be left
    try:
        tables = {name for (name,) in raw.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        columns = {
            c
            for (c,) in raw.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'prompts'"
            ).fetchall()
        }
        versions = raw.execute("SELECT version FROM schema_migrations").fetchall()
    finally:
        raw.close()
    assert "half_done" not in tables
    assert "lang" not in columns
    assert versions == [(1,)]

    # It was never recorded, so fixing the file is allowed and the fix applies.
    broken.write_text("ALTER TABLE prompts ADD COLUMN lang VARCHAR;\n")
    with Store.open(db_path, migrations_dir=migrations) as store:
        assert store.applied_migrations() == [(1, "initial"), (2, "broken")]
        assert "half_done" not in store.tables()


def test_a_migration_numbered_below_an_applied_one_is_refused(db_path: Path, migrations: Path):
    (migrations / "0003_later.sql").write_text("CREATE TABLE later (x INTEGER);\n")
    Store.open(db_path, migrations_dir=migrations).close()
    (migrations / "0002_too_late.sql").write_text("CREATE TABLE too_late (x INTEGER);\n")
    with pytest.raises(MigrationError, match=r"0002_too_late\.sql.*0004_too_late\.sql"):
        Store.open(db_path, migrations_dir=migrations)


def test_a_misnamed_migration_file_is_refused(db_path: Path, migrations: Path):
    (migrations / "2_oops.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        Store.open(db_path, migrations_dir=migrations)


def test_read_only_open_checks_but_never_migrates(db_path: Path, migrations: Path):
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(db_path, read_only=True, migrations_dir=migrations)
    with Store.open(db_path, migrations_dir=migrations) as store:
        store.add_prompt([{"role": "user", "content": "hello"}], "test", "train")
    with Store.open(db_path, read_only=True, migrations_dir=migrations) as store:
        assert store.counts()["prompts"] == 1
    (migrations / "0002_more.sql").write_text("CREATE TABLE more (x INTEGER);\n")
    with pytest.raises(MigrationError, match=r"0002_more\.sql.*read-write"):
        Store.open(db_path, read_only=True, migrations_dir=migrations)
    with Store.open(db_path, migrations_dir=migrations) as store:
        assert "more" in store.tables()
