"""Prompt import: every file type, validation to one line, dedupe, splits, and all-or-nothing writes."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.import_rows import to_prompt
from annotate.importer import assign_split, import_prompts, preview_rows, read_prompt_rows
from common.errors import StoreError, UserInputError
from store import Store
from store.import_queries import NewPrompt
from store.queries import content_hash

DEMO = Path(__file__).resolve().parents[2] / "data" / "incidents.jsonl"

ROWS = [
    {"prompt": "Is the API down?", "split": "heldout", "gold": "Yes, SEV1.", "team": "core", "n": 3},
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                  {"role": "user", "content": "Summarise the outage."}], "gold": {"answer": "x"}},
    {"prompt": "Rate this incident.", "system": "You are an SRE.", "split": "train", "gold_severity": "SEV3"},
]  # fmt: skip


@pytest.fixture
def db(tmp_path: Path):
    with Store.open(tmp_path / "db.duckdb") as s:
        yield s


def prompts(store: Store) -> list:
    """Every stored prompt in insertion order."""
    ids = [i for (i,) in store.cursor().execute("SELECT id FROM prompts ORDER BY id").fetchall()]
    return [store.get_prompt(i) for i in ids]


def n_prompts(store: Store) -> int:
    return store.counts()["prompts"]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def assert_rows_stored(store: Store, source: str) -> None:
    """The three ROWS, stored with the right messages, split, gold and meta."""
    first, second, third = prompts(store)
    assert first.messages == [{"role": "user", "content": "Is the API down?"}]
    assert (first.split, first.gold, first.source) == ("heldout", "Yes, SEV1.", source)
    assert first.meta == {"team": "core", "n": 3}
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]
    assert second.gold == {"answer": "x"}
    assert second.split == assign_split(second.content_hash, seed=0, heldout_percent=10)
    assert second.meta is None
    assert third.messages == [
        {"role": "system", "content": "You are an SRE."},
        {"role": "user", "content": "Rate this incident."},
    ]
    assert (third.split, third.gold) == ("train", {"severity": "SEV3"})


# -- every source type ------------------------------------------------------------------------


def test_jsonl_imports_messages_split_gold_and_meta(db, tmp_path):
    report = import_prompts(db, str(write_jsonl(tmp_path / "prompts.jsonl", ROWS)))
    assert (report.inserted, report.duplicates, report.skipped_bad, report.rows_read) == (3, 0, 0, 3)
    assert report.source == "prompts.jsonl"
    assert sum(report.by_split.values()) == 3 and report.by_split["heldout"] >= 1
    assert_rows_stored(db, "prompts.jsonl")


def test_gzipped_jsonl_imports(db, tmp_path):
    path = tmp_path / "prompts.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in ROWS).encode()))
    assert import_prompts(db, str(path)).inserted == 3
    assert_rows_stored(db, "prompts.jsonl.gz")


def test_json_list_imports(db, tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(ROWS), encoding="utf-8")
    assert import_prompts(db, str(path)).inserted == 3
    assert_rows_stored(db, "prompts.json")


def test_csv_with_a_messages_json_column_imports(db, tmp_path):
    path = tmp_path / "prompts.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["prompt", "messages", "system", "split", "gold", "gold_severity", "team", "n"])
        out.writerow(["Is the API down?", "", "", "heldout", "Yes, SEV1.", "", "core", 3])
        out.writerow(["", json.dumps(ROWS[1]["messages"]), "", "", "", "", "", ""])
        out.writerow(["Rate this\nincident.", "", "You are an SRE.", "train", "", "SEV3", "", ""])
    report = import_prompts(db, str(path))
    assert report.inserted == 3
    first, second, third = prompts(db)
    assert (first.split, first.gold, first.meta) == ("heldout", "Yes, SEV1.", {"team": "core", "n": "3"})
    assert [m["content"] for m in second.messages][-1] == "Summarise the outage."
    assert third.messages[0] == {"role": "system", "content": "You are an SRE."}
    assert third.messages[1]["content"] == "Rate this\nincident."  # a quoted cell keeps its newline
    assert third.gold == {"severity": "SEV3"}


def test_parquet_imports_with_nulls_as_none(db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "prompt": ["Is the API down?", "Disk full on db-3"],
            "split": ["heldout", None],
            "gold": ["Yes, SEV1.", None],
            "score": [1.5, float("nan")],
            "tags": [["a", "b"], []],
        }
    )
    pq.write_table(table, tmp_path / "prompts.parquet")
    assert import_prompts(db, str(tmp_path / "prompts.parquet")).inserted == 2
    first, second = prompts(db)
    assert (first.split, first.gold, first.meta) == (
        "heldout",
        "Yes, SEV1.",
        {"score": 1.5, "tags": ["a", "b"]},
    )
    assert second.gold is None
    assert second.meta == {"score": None, "tags": []}  # NaN is stored as null, never as invalid JSON


def test_local_dataset_saved_to_disk_imports(db, tmp_path):
    import datasets

    keys = ["prompt", "system", "split", "gold", "gold_severity"]
    rows = [{k: row.get(k) for k in keys} for row in (ROWS[0], ROWS[2])]  # one schema for both rows
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    report = import_prompts(db, str(tmp_path / "saved"))
    assert (report.inserted, report.source, report.format) == (2, "saved", "dataset")
    first, second = prompts(db)
    assert (first.split, first.gold) == ("heldout", "Yes, SEV1.")
    assert second.gold == {"severity": "SEV3"}


def test_dataset_split_is_chosen_by_name(db, tmp_path):
    import datasets

    train = datasets.Dataset.from_list([{"prompt": "train question"}])
    test = datasets.Dataset.from_list([{"prompt": "test question"}, {"prompt": "another"}])
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dd"))
    assert import_prompts(db, str(tmp_path / "dd"), split="test").inserted == 2
    assert [p.messages[0]["content"] for p in prompts(db)] == ["test question", "another"]
    with pytest.raises(UserInputError, match="no split 'validation'; it has test, train"):
        import_prompts(db, str(tmp_path / "dd"), split="validation")


def test_local_data_files_folder_loads_through_load_dataset(db, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    folder = tmp_path / "my_prompts"
    folder.mkdir()
    write_jsonl(folder / "part-0.jsonl", ROWS)
    report = import_prompts(db, str(folder))
    assert (report.inserted, report.source) == (3, "my_prompts")
    assert {p.source for p in prompts(db)} == {"my_prompts"}


def test_the_demo_file_imports_with_its_splits_and_gold(db):
    lines = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    report = import_prompts(db, str(DEMO))
    assert report.inserted >= 300 and report.skipped_bad == 0
    stored = prompts(db)
    by_id = {p.meta["id"]: p for p in stored}
    assert Counter(p.split for p in stored) == Counter(r["split"] for r in lines)
    assert set(report.by_split) == {"train", "heldout"} and min(report.by_split.values()) > 0
    for row in lines:
        prompt = by_id[row["id"]]
        assert prompt.split == row["split"]
        assert prompt.gold == {"answer": row["gold"], "severity": row["gold_severity"]}
        assert prompt.meta["category"] == row["category"]


# -- duplicates and atomicity -----------------------------------------------------------------


def test_reimporting_adds_nothing_and_counts_duplicates(db, tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", ROWS + [ROWS[0], {**ROWS[0], "team": "other"}])
    first = import_prompts(db, str(path))
    assert (first.inserted, first.duplicates) == (3, 2)  # repeats within the file: the first one wins
    assert prompts(db)[0].meta == {"team": "core", "n": 3}
    again = import_prompts(db, str(path))
    assert (again.inserted, again.duplicates, again.by_split) == (0, 5, {"train": 0, "heldout": 0})
    assert n_prompts(db) == 3


def test_a_bad_row_in_the_middle_names_file_row_and_field_and_writes_nothing(db, tmp_path):
    import_prompts(db, str(write_jsonl(tmp_path / "earlier.jsonl", [{"prompt": "kept from before"}])))
    rows = [{"prompt": f"question {i}"} for i in range(10)]
    rows[6] = {"messages": "not json at all"}
    with pytest.raises(UserInputError) as info:
        import_prompts(db, str(write_jsonl(tmp_path / "prompts.jsonl", rows)))
    message = str(info.value)
    assert message == (
        "prompts.jsonl row 7, field 'messages': expected a list of {role, content} messages, "
        "got a string that is not JSON; --skip-bad skips such rows"
    )
    assert [p.source for p in prompts(db)] == ["earlier.jsonl"]


def test_skip_bad_counts_bad_rows_and_imports_the_rest(db, tmp_path):
    rows = [{"prompt": "good 1"}, {"prompt": ""}, "not an object", {"prompt": "good 2"}, {"split": "train"}]
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")
    report = import_prompts(db, str(path), skip_bad=True)
    assert (report.inserted, report.skipped_bad, report.rows_read) == (2, 4, 6)
    assert report.bad_examples == [
        "prompts.jsonl row 2, field 'prompt': empty prompt",
        "prompts.jsonl row 3: expected a JSON object, got a string",
        "prompts.jsonl row 5, field 'prompt': missing: a row needs a 'prompt' or a 'messages' column",
        "prompts.jsonl row 6: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
    ]
    assert "4 bad row(s) skipped" in report.summary()
    assert [p.messages[0]["content"] for p in prompts(db)] == ["good 1", "good 2"]


def test_skip_bad_keeps_only_the_first_few_reasons(db, tmp_path):
    rows = [{"prompt": 1}] * 20 + [{"prompt": "fine"}]
    report = import_prompts(db, str(write_jsonl(tmp_path / "p.jsonl", rows)), skip_bad=True)
    assert (report.inserted, report.skipped_bad, len(report.bad_examples)) == (1, 20, 5)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"prompt": "   "}, "field 'prompt': empty prompt"),
        ({"prompt": 42}, "field 'prompt': expected a string or a list of messages, got a number"),
        ({"messages": {"role": "user"}}, "field 'messages': expected a list of {role, content} messages, got an object"),
        ({"messages": "{}"}, "field 'messages': expected a list of {role, content} messages, got JSON text holding an object"),
        ({"messages": []}, "got an empty list"),
        ({"messages": ["hi"]}, "message 1: expected a {role, content} object, got a string"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "message 1: role 'bot' is not system, user or assistant"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "message 1: content must be a string, got a list"),
        ({"messages": [{"role": "user", "content": ""}]}, "message 1: content is empty"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
         "the last message is from the assistant; a prompt must end with a user turn"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"},
                       {"role": "user", "content": "q"}]}, "message 2: only the first message may be a system"),
        ({"prompt": "q", "system": 3}, "field 'system': expected a string, got a number"),
        ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}], "system": "t"},
         "field 'system': the messages already start with a system message"),
        ({"prompt": "q", "split": "test"}, "field 'split': expected 'train' or 'heldout', got 'test'"),
        ({"prompt": "q", "split": 1}, "field 'split': expected 'train' or 'heldout', got a number"),
        ({"prompt": "q", "blob": "\ud800"}, "field 'blob': invalid text (lone surrogate \\ud800)"),
    ],
)  # fmt: skip
def test_each_bad_row_is_one_line_naming_the_field(db, tmp_path, row, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(UserInputError) as info:
        import_prompts(db, str(path))
    message = str(info.value)
    assert message.startswith("bad.jsonl row 2")
    assert expected in message
    assert "\n" not in message
    assert n_prompts(db) == 0


def test_invalid_utf8_names_the_row_and_field(db, tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9 is down"}\n')
    with pytest.raises(
        UserInputError,
        match=r"^latin1.jsonl row 2, field 'prompt': invalid UTF-8 \(byte 0xe9\); --skip-bad skips such rows$",
    ):
        import_prompts(db, str(path))
    report = import_prompts(db, str(path), skip_bad=True)
    assert (report.inserted, report.skipped_bad) == (1, 1)


def test_invalid_utf8_in_a_csv_cell_names_the_row_and_column(db, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"prompt,team\nfine,core\nalso fine,caf\xe9\n")
    with pytest.raises(UserInputError, match=r"^latin1.csv row 2, field 'team': invalid UTF-8"):
        import_prompts(db, str(path))
    assert n_prompts(db) == 0


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.json", "blank.jsonl"])
def test_an_empty_file_is_one_clear_line(db, tmp_path, name):
    path = tmp_path / name
    path.write_text("\n\n" if name == "blank.jsonl" else "", encoding="utf-8")
    with pytest.raises(UserInputError, match=rf"^{name}: no rows to import \(the file is empty\)$"):
        import_prompts(db, str(path))


def test_a_header_only_csv_has_no_rows(db, tmp_path):
    (tmp_path / "header.csv").write_text("prompt,split\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="no rows to import"):
        import_prompts(db, str(tmp_path / "header.csv"))


def test_unknown_extension_and_missing_file_and_broken_files(db, tmp_path):
    (tmp_path / "prompts.txt").write_text("hello\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"^prompts.txt: unknown file type '.txt'; use JSONL"):
        import_prompts(db, str(tmp_path / "prompts.txt"))
    with pytest.raises(UserInputError, match="no such file"):
        import_prompts(db, str(tmp_path / "missing.jsonl"))
    (tmp_path / "fake.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(UserInputError, match="^cannot read fake.jsonl.gz"):
        import_prompts(db, str(tmp_path / "fake.jsonl.gz"))
    (tmp_path / "fake.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserInputError, match="^cannot read fake.parquet"):
        import_prompts(db, str(tmp_path / "fake.parquet"))
    (tmp_path / "obj.json").write_text('{"prompt": "x"}', encoding="utf-8")
    with pytest.raises(UserInputError, match="expected a JSON list of objects, got an object"):
        import_prompts(db, str(tmp_path / "obj.json"))
    (tmp_path / "broken.json").write_text('[{"prompt": "x"},\n {"prompt": }]', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"^broken.json line 2, column 13: not valid JSON"):
        import_prompts(db, str(tmp_path / "broken.json"))
    assert n_prompts(db) == 0


def test_a_json_file_holding_json_lines_is_read_as_jsonl(db, tmp_path):
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    assert import_prompts(db, str(tmp_path / "lines.json")).inserted == 3


def test_a_missing_hub_dataset_is_one_line(db):
    with pytest.raises(UserInputError, match="^cannot load dataset no-such-org/no-such-dataset from the Hub"):
        import_prompts(db, "no-such-org/no-such-dataset")


def test_a_file_split_option_must_be_train_or_heldout(db, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "b", "split": "train"}])
    with pytest.raises(UserInputError, match="a file has no dataset splits"):
        import_prompts(db, str(path), split="validation")
    report = import_prompts(db, str(path), split="heldout")
    assert report.by_split == {"train": 1, "heldout": 1}  # a row's own split wins over the option


# -- split assignment -------------------------------------------------------------------------


def test_split_assignment_is_deterministic_and_seeded(tmp_path):
    path = write_jsonl(tmp_path / "many.jsonl", [{"prompt": f"incident number {i}"} for i in range(2000)])
    first = read_prompt_rows(str(path))
    second = read_prompt_rows(str(path))
    assert [r.split for r in first.rows] == [r.split for r in second.rows]
    assert first.assigned == 2000
    held = sum(r.split == "heldout" for r in first.rows)
    assert 140 <= held <= 260  # about 10%: the hash spreads prompts evenly
    other_seed = read_prompt_rows(str(path), seed=1)
    assert [r.split for r in other_seed.rows] != [r.split for r in first.rows]
    assert {r.split for r in read_prompt_rows(str(path), heldout_percent=0).rows} == {"train"}
    assert {r.split for r in read_prompt_rows(str(path), heldout_percent=100).rows} == {"heldout"}
    with pytest.raises(UserInputError, match="from 0 to 100"):
        read_prompt_rows(str(path), heldout_percent=150)


def test_split_assignment_ignores_the_global_rng(tmp_path):
    import random

    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i}"} for i in range(200)])
    random.seed(1)
    first = [r.split for r in read_prompt_rows(str(path)).rows]
    random.seed(2)
    assert [r.split for r in read_prompt_rows(str(path)).rows] == first


# -- helpers for the UI and the store ---------------------------------------------------------


def test_preview_shows_the_first_rows_as_stored_and_errors_inline(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [ROWS[0], {"prompt": 7}, ROWS[2], {"prompt": "more"}])
    shown = preview_rows(str(path), n=3)
    assert [s["row"] for s in shown] == [1, 2, 3]
    assert shown[0]["messages"] == [{"role": "user", "content": "Is the API down?"}]
    assert shown[0]["split"] == "heldout" and shown[0]["meta"] == {"team": "core", "n": 3}
    assert shown[1] == {"row": 2, "error": "p.jsonl row 2, field 'prompt': expected a string or a list of messages, got a number"}  # fmt: skip
    assert shown[2]["gold"] == {"severity": "SEV3"}


def test_progress_reports_rows_read(db, tmp_path):
    calls = []
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i}"} for i in range(2500)])
    import_prompts(db, str(path), progress=lambda done, total: calls.append(done))
    assert calls == [1000, 2000, 2500]


def test_numpy_and_pandas_values_become_plain_json():
    import numpy as np
    import pandas as pd

    record = {
        "prompt": "q",
        "i": np.int64(3),
        "f": np.float32(0.5),
        "nan": np.float64("nan"),
        "arr": np.array([1, 2]),
        "when": pd.Timestamp("2024-01-02T03:04:05"),
        "nat": pd.NaT,
        "na": pd.NA,
    }
    prompt, assigned = to_prompt(record, None)
    assert assigned
    assert prompt.meta == {
        "i": 3, "f": 0.5, "nan": None, "arr": [1, 2], "when": "2024-01-02T03:04:05", "nat": None, "na": None
    }  # fmt: skip
    json.dumps(prompt.meta, allow_nan=False)  # strictly valid JSON


def test_bulk_insert_keeps_file_order_and_dedupes(db):
    rows = [NewPrompt([{"role": "user", "content": f"q{i % 4}"}], "train") for i in range(6)]
    counts = db.add_prompts_bulk(rows, source="t")
    assert (counts.inserted, counts.duplicates, counts.by_split) == (4, 2, {"train": 4})
    assert [p.messages[0]["content"] for p in prompts(db)] == ["q0", "q1", "q2", "q3"]
    assert prompts(db)[0].content_hash == content_hash([{"role": "user", "content": "q0"}])
    assert db.add_prompts_bulk([], source="t").inserted == 0


def test_bulk_insert_is_all_or_nothing(db):
    rows = [NewPrompt([{"role": "user", "content": f"q{i}"}], "train") for i in range(5)]
    object.__setattr__(rows[3], "content_hash", None)  # violates NOT NULL in the middle of the insert
    with pytest.raises(Exception):  # noqa: B017 - any failure; what matters is what is left
        db.add_prompts_bulk(rows, source="t")
    assert n_prompts(db) == 0
    with pytest.raises(StoreError, match="split must be one of"):
        db.add_prompts_bulk([NewPrompt([{"role": "user", "content": "q"}], "test")], source="t")
    assert n_prompts(db) == 0


# -- byte caps, enforced while streaming ---------------------------------------------------------

MiB = 1024 * 1024
CHUNK = 64 * 1024  # the most a capped reader pulls at once (annotate.import_limits.CHUNK)


class CountingGzip(gzip.GzipFile):
    """A GzipFile that records how many decompressed bytes were taken out, and the largest single take."""

    total = 0
    largest = 0

    def _took(self, data):
        CountingGzip.total += len(data)
        CountingGzip.largest = max(CountingGzip.largest, len(data))
        return data

    def read(self, size=-1):
        return self._took(super().read(size))

    def read1(self, size=-1):
        return self._took(super().read1(size))

    def readline(self, size=-1):
        return self._took(super().readline(size))


@pytest.fixture
def counting_gzip(monkeypatch):
    """Every gzip file the importers open counts what it hands out."""
    CountingGzip.total = CountingGzip.largest = 0
    monkeypatch.setattr(gzip, "open", lambda path, mode="rb", *a, **kw: CountingGzip(path, mode))
    return CountingGzip


def gzip_bomb(path: Path, head: bytes, filler: bytes, mib: int, tail: bytes = b"") -> Path:
    """A small .gz file that decompresses to `head`, `mib` MiB of `filler`, then `tail`."""
    block = filler * (MiB // len(filler))
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(head)
        for _ in range(mib):
            fh.write(block)
        fh.write(tail)
    return path


def test_a_gzip_bomb_is_refused_after_reading_only_up_to_the_cap(db, tmp_path, counting_gzip):
    from annotate.import_limits import ImportLimits

    # 64 MiB of blank lines in about 60 KiB: each line is fine, the total is not.
    bomb = gzip_bomb(tmp_path / "bomb.jsonl.gz", b'{"prompt": "q"}\n', b"\n", 64)
    assert bomb.stat().st_size < MiB
    with pytest.raises(UserInputError) as err:
        import_prompts(db, str(bomb), limits=ImportLimits(data_bytes=4 * MiB))
    message = str(err.value)
    assert "\n" not in message and "4 MiB" in message and "--max-bytes" in message
    assert counting_gzip.total <= 4 * MiB + CHUNK  # it stopped within one chunk of the cap
    assert n_prompts(db) == 0


def test_the_data_tab_preview_refuses_a_json_gzip_bomb_without_inflating_it(tmp_path, counting_gzip):
    from annotate.data_service import DataService

    # What the review found: a 199 KiB .json.gz that took 1 GB of memory to preview.
    bomb = gzip_bomb(tmp_path / "bomb.json.gz", b"[", b" ", 200, b"]")
    assert bomb.stat().st_size < MiB
    with pytest.raises(UserInputError) as err:
        DataService(None, tmp_path / "exports").preview(str(bomb))
    assert "64 MiB" in str(err.value) and "JSON Lines" in str(err.value)
    assert counting_gzip.total <= 64 * MiB + CHUNK


def test_the_data_tab_preview_never_holds_an_over_long_line(tmp_path, counting_gzip):
    from annotate.data_service import DataService

    # One 40 MiB line (a prompt that never ends), then a good row.
    bomb = gzip_bomb(tmp_path / "line.jsonl.gz", b'{"prompt": "', b"x", 40, b'"}\n{"prompt": "fine"}\n')
    seen = DataService(None, tmp_path / "exports").preview(str(bomb))
    assert seen.format == "prompts"
    first, second = seen.rows
    assert (
        first["row"] == 1
        and "16 MiB cap on one line" in first["error"]
        and "--max-line-bytes" in first["error"]
    )
    assert second["messages"] == [{"role": "user", "content": "fine"}]
    assert counting_gzip.largest <= CHUNK + 1  # read in pieces, never the whole line at once


def test_the_data_tab_preview_and_import_refuse_an_over_long_cell(db, tmp_path):
    from annotate.data_service import DataService

    path = write_jsonl(tmp_path / "big.jsonl", [{"prompt": "ok"}, {"prompt": "é" * (MiB // 2 + 1)}])
    svc = DataService(db, tmp_path / "exports")
    ok, big = svc.preview(str(path)).rows
    assert ok["messages"] == [{"role": "user", "content": "ok"}]
    assert big["error"].startswith("big.jsonl row 2, field 'prompt': 1 MiB of text, over the 1 MiB cap")
    assert "--max-cell-bytes" in big["error"]
    with pytest.raises(UserInputError, match="--max-cell-bytes.*--skip-bad"):
        svc.import_file(str(path))
    assert n_prompts(db) == 0
    report = svc.import_file(str(path), skip_bad=True)
    assert (report.inserted, report.skipped_bad) == (1, 1)


def _cli(tmp_path, *args):
    """`launch.py --home HOME import ...` in a child process: (exit code, error lines, prompts stored)."""
    from tests.serving import run_cli

    home = tmp_path / "home"
    done = run_cli("import", *map(str, args), home=home, timeout=300)
    with Store.open(home / "preflab.duckdb") as store:
        stored = n_prompts(store)
    errors = [line for line in done.stderr.splitlines() if not line.startswith(("INFO", "WARNING"))]
    return done.returncode, errors, stored


@pytest.mark.parametrize(
    ("case", "flags", "expected"),
    [
        ("bomb", ["--max-bytes", "2M"], "more than 2 MiB of data after decompression"),
        ("line", [], "16 MiB cap on one line (raise it with --max-line-bytes)"),
        ("cell", [], "over the 1 MiB cap on one value (raise it with --max-cell-bytes); --skip-bad skips"),
    ],
)
def test_the_cli_refuses_over_the_caps_with_one_line_and_exit_code_2(tmp_path, case, flags, expected):
    if case == "bomb":
        path = gzip_bomb(tmp_path / "bomb.jsonl.gz", b'{"prompt": "q"}\n', b"\n", 16)
    elif case == "line":
        path = tmp_path / "line.jsonl"
        path.write_text(json.dumps({"prompt": "q"}) + "\n" + json.dumps({"prompt": "x" * (17 * MiB)}) + "\n")
    else:
        path = write_jsonl(tmp_path / "cell.jsonl", [{"prompt": "q"}, {"prompt": "x" * (MiB + 1)}])
    code, errors, stored = _cli(tmp_path, path, *flags)
    assert code == 2
    assert len(errors) == 1 and expected in errors[0], errors
    assert stored == 0  # nothing half-written


def test_the_cli_cell_cap_is_raised_with_its_flag(tmp_path):
    path = write_jsonl(tmp_path / "cell.jsonl", [{"prompt": "q"}, {"prompt": "x" * (MiB + 1)}])
    code, errors, stored = _cli(tmp_path, path, "--max-cell-bytes", "2M")
    assert (code, errors, stored) == (0, [], 2)


def test_the_served_app_caps_uploads(tmp_path):
    from annotate.import_limits import MAX_UPLOAD_BYTES
    from common.context import AppConfig, build_context
    from tests.serving import free_port
    from webui.app import launch_app

    ctx = build_context(AppConfig(home=tmp_path / "home"))
    demo = launch_app(ctx, host="127.0.0.1", port=free_port(), block=False)
    try:
        assert demo.max_file_size == MAX_UPLOAD_BYTES == 200 * MiB  # Gradio refuses larger uploads
    finally:
        demo.close()
        ctx.store.close()


# -- property: any JSONL either imports or fails with one UserInputError, atomically ----------

_plain = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),  # json.dumps writes NaN/Infinity, json.loads reads them
    st.text(max_size=20),
    st.sampled_from([10_000, 300_000]).map(lambda n: "x" * n),  # huge strings
)
_lone_surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)  # escaped by dumps


def _nested(leaves):
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    )


_json = _nested(_plain | _lone_surrogates)
_plain_json = _nested(_plain)
_message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "assistant", "system", "bot"]) | _json,
        "content": st.text(max_size=30) | _json,
    },
)
_row = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.text(max_size=40) | _json,
        "messages": st.lists(_message, max_size=3) | _json,
        "system": st.text(max_size=10) | _json,
        "split": st.sampled_from(["train", "heldout", "test", " Train ", ""]) | _json,
        "gold": _json,
        "gold_severity": _json,
        "extra": _json,
    },
)
# Valid prompts carrying odd gold and extra columns, so imports also succeed and store odd values.
_good_row = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=40).filter(str.strip) | st.just("y" * 200_000)},
    optional={
        "split": st.sampled_from(["train", "heldout"]),
        "gold": _plain_json,
        "gold_severity": _plain_json,
        "extra": _plain_json,
        "more": _plain_json,
    },
)
_good_line = _good_row.map(json.dumps)
_line = st.one_of(
    _good_line,  # listed three times: one_of picks branches about evenly, and successes must be common
    _good_line,
    _good_line,
    _row.map(json.dumps),
    _json.map(json.dumps),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_line, max_size=6), skip_bad=st.booleans())
def test_any_jsonl_imports_or_raises_user_input_error(db, tmp_path, lines, skip_bad):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    db.write(lambda cur: cur.execute("DELETE FROM prompts"))  # each example starts empty, so rows get stored
    db.add_prompt([{"role": "user", "content": "stored earlier"}], "earlier", "train")
    before = n_prompts(db)
    try:
        report = import_prompts(db, str(path), skip_bad=skip_bad)
    except UserInputError as exc:
        assert "\n" not in str(exc)
        assert n_prompts(db) == before
    else:
        assert n_prompts(db) == before + report.inserted
        assert report.inserted + report.duplicates + report.skipped_bad == report.rows_read
        stored = db.cursor().execute("SELECT messages, gold, meta FROM prompts ORDER BY id").fetchall()
        for messages, gold, meta in stored[before:]:
            assert json.loads(messages, parse_constant=_reject)[-1]["role"] == "user"
            for text in (gold, meta):  # strict JSON, so exports load anywhere: no NaN or Infinity
                assert text is None or json.loads(text, parse_constant=_reject) is not None


def _reject(constant: str):
    raise AssertionError(f"stored JSON holds {constant}")
