"""The shipped demo dataset (data/incidents.jsonl): shape, gold format, balance, diversity, reproducibility."""

import importlib.util
import json
import re
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"
JSONL = DATA / "incidents.jsonl"
SCRIPT = DATA / "make_incidents.py"
RUBRIC = DATA / "severity_rubric.md"

KEYS = {"id", "category", "style", "service", "split", "prompt", "gold_severity", "gold"}
GOLD_RE = re.compile(
    r"\ASeverity: (SEV[1-4])\nSummary: ([^\n]+)\nNext steps:\n((?:- [^\n]+\n){1,3}- [^\n]+)\Z"
)
REQUIRED_CATEGORIES = {"outage", "security", "data_quality", "performance", "oncall_page"}


@pytest.fixture(scope="module")
def gen():
    # data/ is not a package: load the generator straight from its file.
    spec = importlib.util.spec_from_file_location("make_incidents_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows():
    with JSONL.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _report(row: dict) -> str:
    return row["prompt"].split("\n\n", 1)[1]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def test_file_loads_with_enough_rows_per_split(rows):
    assert all(set(row) == KEYS for row in rows)
    splits = Counter(row["split"] for row in rows)
    assert set(splits) == {"train", "heldout"}
    assert len(rows) >= 300
    assert splits["train"] >= 250
    assert splits["heldout"] >= 50
    assert JSONL.stat().st_size < 1_000_000


def test_ids_are_unique(rows):
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"inc-\d{4}", i) for i in ids)


def test_prompt_is_the_fixed_instruction_then_the_report(rows, gen):
    for row in rows:
        instruction, sep, report = row["prompt"].partition("\n\n")
        assert sep and instruction == gen.INSTRUCTION, row["id"]
        assert report.strip() == report and report, row["id"]


def test_gold_answers_follow_the_exact_format(rows):
    for row in rows:
        m = GOLD_RE.match(row["gold"])
        assert m, f"{row['id']}: {row['gold']!r}"
        severity, summary, bullets = m.groups()
        assert severity == row["gold_severity"], row["id"]
        # one sentence: a single terminal period, no sentence break inside
        assert summary.endswith(".") and not re.search(r"[.!?]\s", summary), row["id"]
        items = bullets.split("\n")
        assert 2 <= len(items) <= 4, row["id"]
        assert all(len(item[2:].split()) >= 3 for item in items), row["id"]
        assert row["service"] in row["gold"], row["id"]


def test_summary_numbers_come_from_the_report(rows):
    for row in rows:
        summary = row["gold"].split("\n")[1]
        report = _report(row)
        for number in re.findall(r"\d[\d,.:]*\d|\d", summary):
            assert number in report, f"{row['id']}: {number} not in report"


def test_many_services_and_each_named_in_its_report(rows):
    assert len({row["service"] for row in rows}) >= 40
    for row in rows:
        assert row["service"] in _report(row), row["id"]


def test_categories_styles_and_lengths_vary(rows):
    categories = Counter(row["category"] for row in rows)
    assert REQUIRED_CATEGORIES <= set(categories)
    assert len(categories) >= 8
    assert len({row["style"] for row in rows}) >= 8
    lengths = [len(_report(row).split()) for row in rows]
    assert min(lengths) >= 35 and max(lengths) <= 260
    assert sum(n >= 150 for n in lengths) >= 20  # not all short


def test_severities_are_balanced_and_split_is_stratified(rows):
    total = Counter(row["gold_severity"] for row in rows)
    held = Counter(row["gold_severity"] for row in rows if row["split"] == "heldout")
    n_held = sum(held.values())
    assert set(total) == {"SEV1", "SEV2", "SEV3", "SEV4"}
    for sev, count in total.items():
        assert count / len(rows) >= 0.15, sev
        assert abs(held[sev] / n_held - count / len(rows)) < 0.05, sev


def test_no_near_duplicate_reports(rows):
    grams = []
    for row in rows:
        w = _words(_report(row))
        grams.append({hash((w[i], w[i + 1], w[i + 2])) for i in range(len(w) - 2)})
    worst, pair = 0.0, None
    for (i, a), (j, b) in combinations(enumerate(grams), 2):
        inter = len(a & b)
        jac = inter / (len(a) + len(b) - inter)
        if jac > worst:
            worst, pair = jac, (rows[i]["id"], rows[j]["id"])
    assert worst < 0.5, f"near-duplicates {pair}: trigram Jaccard {worst:.2f}"


def test_generator_is_deterministic_and_matches_the_committed_file(gen, rows):
    first = gen.build(gen.SEED)
    assert first == gen.build(gen.SEED)
    assert first == rows
    assert gen.to_jsonl(first) == JSONL.read_text(encoding="utf-8")
    assert gen.build(gen.SEED + 1) != first


def test_generator_uses_only_a_seeded_rng():
    src = SCRIPT.read_text(encoding="utf-8")
    assert "from random import Random" in src
    assert not re.search(
        r"^import random|\brandom\.(seed|random|choice|choices|shuffle|sample|randint)\(", src, re.M
    )


def test_rubric_file_matches_the_generator(gen):
    text = RUBRIC.read_text(encoding="utf-8")
    assert text == gen.JUDGE_RUBRIC_MD
    assert gen.SEVERITY_RUBRIC in text
    for level in ("SEV1", "SEV2", "SEV3", "SEV4"):
        assert level in gen.SEVERITY_RUBRIC
