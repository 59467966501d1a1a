"""Property tests of both importers over every file type: a one-line UserInputError or counted skips, atomically.

tests/annotate/test_importer.py fuzzes prompt JSONL; this covers the rest: prompt CSV, JSON, Parquet and gzip,
and the preference importer (TRL, conversational, UltraFeedback, HH-RLHF rows) as JSONL, CSV and Parquet, with
malformed rows, wrong types, huge fields, invalid UTF-8 and empty files.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from annotate.import_limits import ImportLimits
from annotate.importer import import_prompts
from annotate.pref_import import FORMATS, import_preferences
from common.errors import UserInputError
from store import Store

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TABLES = ("prompts", "generations", "pairs", "labels", "models", "judge_verdicts", "review_queue")
_names = itertools.count()


@pytest.fixture
def db(tmp_path):
    with Store.open(tmp_path / "db.duckdb") as s:
        s.add_prompt([{"role": "user", "content": "stored earlier"}], "earlier", "train")
        yield s


def counts(store: Store) -> dict[str, int]:
    cur = store.cursor()
    return {t: cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def fresh(tmp_path, suffix: str):
    """A new file name per example: the importers name sources after their files."""
    return tmp_path / f"fuzz{next(_names)}{suffix}"


# -- values ------------------------------------------------------------------------------------

_huge = st.sampled_from([5_000, 300_000]).map(lambda n: "z" * n)
_text = (
    st.text(max_size=25)
    | _huge
    | st.sampled_from(["", "  ", "\x00", "\ud800", "Human: hi", "\n\nAssistant: x"])
)
_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | _text
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_role = st.sampled_from(["user", "assistant", "system", "human", ""]) | _json
_message = st.fixed_dictionaries({}, optional={"role": _role, "content": _text | _json})
_messages = st.lists(_message, max_size=4) | _json


def _hh():
    return st.builds(
        lambda p, a, extra: f"\n\nHuman: {p}\n\nAssistant: {a}{extra}",
        _text,
        _text,
        st.sampled_from(["", "\n\nHuman: more", "\n\nAssistant: twice", "Human:"]),
    )


_pref_row = st.one_of(
    st.fixed_dictionaries(  # trl
        {"prompt": _text | _json, "chosen": _text | _json, "rejected": _text | _json},
        optional={"split": _text | _json, "extra": _json},
    ),
    st.fixed_dictionaries(  # conversational / ultrafeedback
        {"chosen": _messages, "rejected": _messages},
        optional={
            "prompt": _text | _messages,
            "score_chosen": _json,
            "score_rejected": _json,
            "messages": _json,
        },
    ),
    st.fixed_dictionaries({"chosen": _hh() | _text, "rejected": _hh() | _text}),  # hh-rlhf
    st.dictionaries(st.sampled_from(["prompt", "chosen", "rejected", "messages", "x"]), _json, max_size=4),
    _json,
)
# Rows that do import, so successes (and their counts) are exercised too.
_good_pref = st.builds(
    lambda p, c, r: {"prompt": f"q{next(_names)} {p}", "chosen": f"yes {c}", "rejected": f"no {r}"},
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
)
_formats = st.sampled_from(["auto"] * 4 + list(FORMATS))  # forced formats mostly refuse: auto most often
_raw_line = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b""))


def _dumps(value) -> bytes:
    return json.dumps(value).encode()


# -- invariants --------------------------------------------------------------------------------


def check_prompt_import(store: Store, path, **kw) -> None:
    # Each example starts from one stored prompt, so its rows are new rather than duplicates of earlier examples.
    store.write(lambda cur: cur.execute("DELETE FROM prompts"))
    store.add_prompt([{"role": "user", "content": "stored earlier"}], "earlier", "train")
    before = counts(store)
    try:
        report = import_prompts(store, str(path), **kw)
    except UserInputError as exc:
        event("refused")
        assert "\n" not in str(exc) and str(exc).strip()
        assert counts(store) == before, "a failed import wrote something"
        return
    event("imported" if report.inserted else "nothing new")
    after = counts(store)
    assert after["prompts"] == before["prompts"] + report.inserted
    assert report.inserted + report.duplicates + report.skipped_bad == report.rows_read
    assert {k: v for k, v in after.items() if k != "prompts"} == {
        k: v for k, v in before.items() if k != "prompts"
    }


def check_pref_import(store: Store, path, **kw) -> None:
    before = counts(store)
    try:
        report = import_preferences(store, str(path), **kw)
    except UserInputError as exc:
        event("refused")
        assert "\n" not in str(exc) and str(exc).strip()
        assert counts(store) == before, "a failed import wrote something"
        return
    event("imported" if report.inserted else "nothing new")
    after = counts(store)
    assert report.inserted + report.duplicates + report.skipped_bad == report.rows_read
    assert after["pairs"] == before["pairs"] + report.inserted
    assert after["labels"] == before["labels"] + report.inserted
    assert after["prompts"] == before["prompts"] + report.new_prompts
    stored = store.cursor().execute("SELECT messages, meta FROM prompts").fetchall()
    for messages, meta in stored:
        assert json.loads(messages)[-1]["role"] == "user"
        assert meta is None or isinstance(json.loads(meta), dict)


# -- prompt importer: CSV, JSON, Parquet, gzip ---------------------------------------------------

_cell = _text | st.integers().map(str) | _json.map(json.dumps)
_good_cell = st.text(min_size=1, max_size=15).filter(str.strip).map(lambda t: f"p {t}")


@FUZZ
@given(
    good=st.booleans(),
    data=st.data(),
    bad_bytes=st.sampled_from([b""] * 3) | st.binary(max_size=6),
    skip_bad=st.booleans(),
)
def test_prompt_csv(db, tmp_path, good, data, bad_bytes, skip_bad):
    if good:
        header = data.draw(st.sampled_from([["prompt"], ["prompt", "gold"], ["gold", "prompt", "split"]]))
        rows = data.draw(
            st.lists(st.lists(_good_cell, min_size=len(header), max_size=len(header)), max_size=4)
        )
    else:
        header = data.draw(
            st.lists(st.sampled_from(["prompt", "messages", "gold", "split", "system", "x", ""]))
        )
        rows = data.draw(st.lists(st.lists(_cell, max_size=5), max_size=5))
    buf = io.StringIO()
    writer = csv.writer(buf)
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    path = fresh(tmp_path, ".csv")
    path.write_bytes(buf.getvalue().encode("utf-8", "surrogatepass") + bad_bytes)
    check_prompt_import(db, path, skip_bad=skip_bad)


_prompt_docs = {
    "good": st.lists(
        st.fixed_dictionaries({"prompt": _good_cell}, optional={"gold": _good_cell}), min_size=1, max_size=4
    ),
    "rows": st.lists(
        st.fixed_dictionaries({}, optional={"prompt": _text | _json, "messages": _messages}), max_size=4
    ),
    "any": _json,
}


@FUZZ
@given(kind=st.sampled_from(["good", "good", "rows", "any", "raw"]), data=st.data(), skip_bad=st.booleans())
def test_prompt_json(db, tmp_path, kind, data, skip_bad):
    path = fresh(tmp_path, ".json")
    if kind == "raw":
        path.write_bytes(data.draw(st.binary(max_size=40)))
    else:
        path.write_bytes(json.dumps(data.draw(_prompt_docs[kind])).encode("utf-8", "surrogatepass"))
    check_prompt_import(db, path, skip_bad=skip_bad)


_BAD_KINDS = ["text", "int", "float", "bool", "list", "struct", "binary", "null", "huge"]
_arrow_column = st.sampled_from(["good"] * 12 + _BAD_KINDS)  # about half the files have a bad column


def _arrow_values(name: str, kind: str, n: int, draw):
    import pyarrow as pa

    if kind == "good":  # non-empty and different per column, so whole files import
        tag = draw(st.text(min_size=1, max_size=8).filter(str.strip))
        return pa.array([f"{name} {tag} {i} {next(_names)}" for i in range(n)], pa.string())
    if kind == "text":
        return pa.array(draw(st.lists(st.text(max_size=10) | st.none(), min_size=n, max_size=n)), pa.string())
    if kind == "huge":
        return pa.array(["h" * 300_000] * n, pa.string())
    if kind == "int":
        return pa.array(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)), pa.int64())
    if kind == "float":
        return pa.array(draw(st.lists(st.floats(allow_nan=True), min_size=n, max_size=n)), pa.float64())
    if kind == "bool":
        return pa.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), pa.bool_())
    if kind == "list":
        return pa.array(draw(st.lists(st.lists(st.text(max_size=5), max_size=3), min_size=n, max_size=n)))
    if kind == "struct":
        return pa.array([{"role": "user", "content": str(i)} for i in range(n)])
    if kind == "binary":  # invalid UTF-8 in a binary column
        return pa.array([b"\xff\xfe" + bytes([i]) for i in range(n)], pa.binary())
    return pa.nulls(n)


@FUZZ
@given(data=st.data(), n=st.integers(0, 4), skip_bad=st.booleans())
def test_prompt_parquet(db, tmp_path, data, n, skip_bad):
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = data.draw(
        st.sampled_from([["prompt"], ["prompt", "gold"]])
        | st.lists(st.sampled_from(["prompt", "messages", "gold", "split", "x"]), unique=True, max_size=3)
    )
    table = pa.table({name: _arrow_values(name, data.draw(_arrow_column), n, data.draw) for name in names})
    path = fresh(tmp_path, ".parquet")
    pq.write_table(table, path)
    check_prompt_import(db, path, skip_bad=skip_bad)


@FUZZ
@given(
    lines=st.lists(st.fixed_dictionaries({"prompt": _text}).map(_dumps) | _raw_line, max_size=4),
    cut=st.integers(0, 60),
    garbage=st.booleans(),
)
def test_prompt_gzip_truncated_or_fake(db, tmp_path, lines, cut, garbage):
    payload = gzip.compress(b"\n".join(lines))
    path = fresh(tmp_path, ".jsonl.gz")
    path.write_bytes(b"not gzip at all" if garbage else payload[: max(0, len(payload) - cut)])
    check_prompt_import(db, path)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet", ".jsonl.gz"])
@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_empty_and_blank_files_are_one_line_for_both_importers(db, tmp_path, suffix, content):
    path = fresh(tmp_path, suffix)
    path.write_bytes(gzip.compress(content) if suffix.endswith(".gz") else content)
    for importer in (import_prompts, import_preferences):
        before = counts(db)
        with pytest.raises(UserInputError) as info:
            importer(db, str(path))
        assert "\n" not in str(info.value) and counts(db) == before


# -- preference importer -----------------------------------------------------------------------


_pref_lines = {
    "good": st.lists(_good_pref.map(_dumps), min_size=1, max_size=5),
    "mixed": st.lists(_good_pref.map(_dumps) | _pref_row.map(_dumps) | _raw_line, max_size=5),
}


@FUZZ
@given(kind=st.sampled_from(["good", "mixed", "mixed"]), data=st.data(), fmt=_formats, skip_bad=st.booleans())
def test_preference_jsonl(db, tmp_path, kind, data, fmt, skip_bad):
    path = fresh(tmp_path, ".jsonl")
    path.write_bytes(b"\n".join(data.draw(_pref_lines[kind])))
    check_pref_import(db, path, format=fmt, skip_bad=skip_bad)


@FUZZ
@given(
    rows=st.lists(_good_pref | _pref_row.filter(lambda r: isinstance(r, dict)), min_size=1, max_size=4),
    fmt=_formats,
    bad_bytes=st.binary(max_size=4),
    skip_bad=st.booleans(),
)
def test_preference_csv(db, tmp_path, rows, fmt, bad_bytes, skip_bad):
    columns = sorted({str(k) for r in rows for k in r})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: v if isinstance(v, str) else json.dumps(v) for k, v in r.items()})
    path = fresh(tmp_path, ".csv")
    path.write_bytes(buf.getvalue().encode("utf-8", "surrogatepass") + bad_bytes)
    check_pref_import(db, path, format=fmt, skip_bad=skip_bad)


@FUZZ
@given(data=st.data(), n=st.integers(0, 4), fmt=_formats, skip_bad=st.booleans())
def test_preference_parquet(db, tmp_path, data, n, fmt, skip_bad):
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = data.draw(
        st.sampled_from([["prompt", "chosen", "rejected"]] * 2)
        | st.lists(
            st.sampled_from(["prompt", "chosen", "rejected", "score_chosen", "x"]), unique=True, max_size=4
        )
    )
    table = pa.table({name: _arrow_values(name, data.draw(_arrow_column), n, data.draw) for name in names})
    path = fresh(tmp_path, ".parquet")
    pq.write_table(table, path)
    check_pref_import(db, path, format=fmt, skip_bad=skip_bad)


# -- byte caps: every file type, both importers ------------------------------------------------

_SMALL = ImportLimits(data_bytes=256 * 1024, line_bytes=16 * 1024, cell_bytes=4 * 1024)


def _write(path, rows: list[dict]) -> None:
    """`rows` in the file type `path`'s suffix names."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet"])
@pytest.mark.parametrize("prefs", [False, True])
def test_a_value_over_the_cell_cap_is_a_bad_row_in_every_file_type(db, tmp_path, suffix, prefs):
    big = "é" * 2100  # 4200 bytes in UTF-8, though only 2100 characters
    if prefs:
        rows = [
            {"prompt": "q1", "chosen": "a", "rejected": "b"},
            {"prompt": "q2", "chosen": big, "rejected": "b"},
        ]
        importer, field = import_preferences, "chosen"
    else:
        rows = [{"prompt": "q1"}, {"prompt": big}]
        importer, field = import_prompts, "prompt"
    path = fresh(tmp_path, suffix)
    _write(path, rows)
    before = counts(db)
    with pytest.raises(UserInputError) as info:
        importer(db, str(path), limits=_SMALL)
    assert f"row 2, field '{field}': 4.1 KiB of text, over the 4 KiB cap on one value" in str(info.value)
    assert "--max-cell-bytes" in str(info.value) and "--skip-bad" in str(info.value)
    assert counts(db) == before
    report = importer(db, str(path), limits=_SMALL, skip_bad=True)
    assert (report.inserted, report.skipped_bad) == (1, 1)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet"])
def test_a_file_over_the_data_cap_is_refused_in_one_line(db, tmp_path, suffix):
    rows = [{"prompt": f"question {i} " + "x" * 1000} for i in range(400)]  # about 400 KiB
    path = fresh(tmp_path, suffix)
    _write(path, rows)
    before = counts(db)
    with pytest.raises(UserInputError) as info:
        import_prompts(db, str(path), limits=_SMALL)
    assert "\n" not in str(info.value) and "256 KiB" in str(info.value)
    assert counts(db) == before


def test_an_over_long_csv_line_is_refused_in_one_line(db, tmp_path):
    path = fresh(tmp_path, ".csv")
    path.write_text("prompt,note\nq1,ok\nq2," + "y" * 20_000 + "\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"line 3: a line longer than the 16 KiB cap.*--max-line-bytes"):
        import_prompts(db, str(path), limits=_SMALL)
