"""The vocabulary equals what the database accepts: every `col IN (...)` CHECK in the migrations has its enum."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common import vocab
from common.vocab import (
    JUDGE_WINNERS,
    PROMPT_SETS,
    SCREEN_VOTES,
    Decision,
    JobKind,
    JobStatus,
    LabelSource,
    MetricSplit,
    ModelKind,
    Order,
    RunKind,
    Side,
    Split,
    Vote,
    values,
)

MIGRATIONS = Path(__file__).resolve().parents[2] / "store" / "migrations"
_TABLE = re.compile(r"CREATE TABLE (\w+) \((.*?)\n\);", re.S)
_CHECK = re.compile(r"CHECK \((\w+) IN \(([^)]*)\)\)")

# (table, column) -> the values the code may store there.
EXPECTED = {
    ("prompts", "split"): values(Split),
    ("models", "kind"): values(ModelKind),
    ("jobs", "kind"): values(JobKind),
    ("jobs", "status"): values(JobStatus),
    ("judge_verdicts", "position_order"): values(Order),
    ("judge_verdicts", "winner"): JUDGE_WINNERS,
    ("labels", "source"): values(LabelSource),
    ("labels", "decision"): values(Decision),
    ("labels", "suggestion"): JUDGE_WINNERS,
    ("runs", "kind"): values(RunKind),
    ("runs", "status"): values(JobStatus),
    ("run_metrics", "split"): values(MetricSplit),
    ("battles", "vote"): values(Vote),
}


def database_checks() -> dict[tuple[str, str], tuple[str, ...]]:
    """Every `CHECK (col IN ('x', ...))` in the migrations, by table and column; a later migration wins."""
    found = {}
    for sql in sorted(MIGRATIONS.glob("*.sql")):
        text = re.sub(r"--[^\n]*", "", sql.read_text())
        for table, body in _TABLE.findall(text):
            for column, listed in _CHECK.findall(body):
                found[(table, column)] = tuple(re.findall(r"'([^']*)'", listed))
    return found


def test_the_migrations_have_the_checks_this_test_reads():
    # A parser that found nothing would pass every comparison below.
    assert len(database_checks()) >= 13


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=".".join)
def test_each_enum_equals_the_values_its_column_accepts(key):
    assert EXPECTED[key] == database_checks()[key]


def test_every_checked_column_has_an_enum():
    assert sorted(database_checks()) == sorted(EXPECTED)


def test_members_are_the_stored_strings():
    assert Decision.BOTH_BAD == "both_bad" and f"{JobStatus.CANCELLED}" == "cancelled"
    assert all(type(v) is str for v in (*values(Decision), *JUDGE_WINNERS, *SCREEN_VOTES))
    assert {Decision.A: 1}["a"] == 1


def test_screen_votes_are_the_sides_and_the_decisions_without_a_side():
    assert SCREEN_VOTES == (
        *values(Side),
        *(d for d in values(Decision) if d not in (Decision.A, Decision.B)),
    )


def test_prompt_sets_are_every_split_with_the_default_heldout_first():
    # The Eval and Arena dropdowns and `eval --prompts` list them in this order; values(Split) puts train first.
    assert PROMPT_SETS == ("heldout", "train")
    assert sorted(PROMPT_SETS) == sorted(values(Split))


def test_every_enum_member_value_is_unique_within_its_enum():
    enums = [v for v in vars(vocab).values() if isinstance(v, type) and issubclass(v, vocab.StrEnum)]
    assert len(enums) >= 13
    for enum in enums:
        assert len(set(values(enum))) == len(enum), enum
