"""Preference import: every format and file type, detection, HH-RLHF turns, bad rows, repeats, and the triples."""

from __future__ import annotations

import csv
import gzip
import json
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import pytest

from annotate.importer import assign_split
from annotate.pref_formats import hh_turns, parse_row
from annotate.pref_import import import_preferences, preview_preferences, read_preference_rows
from common.errors import UserInputError
from store import Store
from store.data_queries import DataQueries
from store.queries import content_hash

Q1 = "What is the capital of France?"
Q2 = "Name a large ocean."
TRL_ROWS = [
    {"prompt": Q1, "chosen": "Paris.", "rejected": "Berlin."},
    {"prompt": Q2, "chosen": "The Pacific.", "rejected": "The Moon."},
]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# Implicit prompt: chosen and rejected repeat a two-turn conversation and differ in the last reply.
CONV_ROWS = [
    {
        "chosen": [user("Hi"), assistant("Hello!"), user(Q1), assistant("Paris.")],
        "rejected": [user("Hi"), assistant("Hello!"), user(Q1), assistant("Rome.")],
    },
    {"chosen": [user(Q2), assistant("The Pacific.")], "rejected": [user(Q2), assistant("The Moon.")]},
]
UF_ROWS = [
    {
        "prompt": Q1,
        "prompt_id": "abc",
        "chosen": [user(Q1), assistant("Paris.")],
        "rejected": [user(Q1), assistant("Lyon.")],
        "messages": [user(Q1), assistant("Paris.")],
        "score_chosen": 9.0,
        "score_rejected": 2.5,
    },
    {
        "prompt": Q2,
        "prompt_id": "def",
        "chosen": [user(Q2), assistant("The Pacific.")],
        "rejected": [user(Q2), assistant("The Moon.")],
        "messages": [user(Q2), assistant("The Pacific.")],
        "score_chosen": 8.0,
        "score_rejected": 1.0,
    },
]
HH_PREFIX = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: " + Q1
HH_ROWS = [
    {
        "chosen": HH_PREFIX + "\n\nAssistant: Paris is the capital.",
        "rejected": HH_PREFIX + "\n\nAssistant: I don't know.",
    },
    {
        "chosen": f"\n\nHuman: {Q2}\n\nAssistant: The Pacific.",
        "rejected": f"\n\nHuman: {Q2}\n\nAssistant: Mars.",
    },
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def triples(store: Store) -> list:
    return store.preference_triples()


def counts(store: Store) -> dict:
    c = store.counts()
    return {k: c[k] for k in ("prompts", "generations", "pairs", "labels", "models")}


# -- each format, each file type ---------------------------------------------------------------


def test_trl_jsonl_becomes_import_triples_with_an_imported_model(store, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", TRL_ROWS)
    report = import_preferences(store, str(path))
    assert (report.format, report.inserted, report.duplicates, report.new_prompts) == ("trl", 2, 0, 2)
    got = triples(store)
    assert [(t.prompt, t.chosen, t.rejected) for t in got] == [
        ([user(Q1)], "Paris.", "Berlin."),
        ([user(Q2)], "The Pacific.", "The Moon."),
    ]
    assert {(t.source, t.annotator, t.decision) for t in got} == {("import", "prefs.jsonl", "a")}
    model = store.get_model("imported:prefs.jsonl")
    assert model is not None and model.kind == "imported"
    stats_sources = store.label_frame()["source"].value_counts().to_dict()
    assert stats_sources == {"import": 2}


def test_trl_conversational_jsonl_gz_uses_the_shared_prefix_as_prompt(store, tmp_path):
    path = tmp_path / "conv.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in CONV_ROWS)
    report = import_preferences(store, str(path))
    assert report.format == "trl-conversational"
    first, second = triples(store)
    assert first.prompt == [user("Hi"), assistant("Hello!"), user(Q1)]
    assert (first.chosen, first.rejected) == ("Paris.", "Rome.")
    assert (second.prompt, second.chosen) == ([user(Q2)], "The Pacific.")


def test_trl_conversational_with_an_explicit_prompt_from_json(store, tmp_path):
    rows = [
        {
            "prompt": [{"role": "system", "content": "Be brief."}, user(Q1)],
            "chosen": [assistant("Paris.")],
            "rejected": [assistant("It is Paris, a city in France, which...")],
        }
    ]
    path = tmp_path / "explicit.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    import_preferences(store, str(path))
    (t,) = triples(store)
    assert t.prompt == [{"role": "system", "content": "Be brief."}, user(Q1)]
    assert t.chosen == "Paris."


def test_ultrafeedback_parquet_keeps_scores_in_the_generation_params(store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "uf.parquet"
    pq.write_table(pa.Table.from_pylist(UF_ROWS), path)
    report = import_preferences(store, str(path))
    assert report.format == "ultrafeedback"
    got = triples(store)
    assert [(t.prompt, t.chosen, t.rejected) for t in got] == [
        ([user(Q1)], "Paris.", "Lyon."),
        ([user(Q2)], "The Pacific.", "The Moon."),
    ]
    params = dict(
        store.cursor()
        .execute("SELECT text, params->>'score' FROM generations WHERE text IN ('Paris.', 'Lyon.')")
        .fetchall()
    )
    assert params == {"Paris.": "9.0", "Lyon.": "2.5"}
    prompt = store.get_prompt(got[0].prompt_id)
    assert prompt.meta == {"prompt_id": "abc"}  # `messages` repeats chosen and is not kept


def test_hh_rlhf_csv_multi_turn_prefix_is_the_prompt(store, tmp_path):
    path = tmp_path / "hh.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["chosen", "rejected"])
        writer.writeheader()
        writer.writerows(HH_ROWS)
    report = import_preferences(store, str(path))
    assert report.format == "hh-rlhf"
    first, second = triples(store)
    assert first.prompt == [user("Hi there"), assistant("Hello! How can I help?"), user(Q1)]
    assert (first.chosen, first.rejected) == ("Paris is the capital.", "I don't know.")
    assert (second.prompt, second.rejected) == ([user(Q2)], "Mars.")


def test_conversational_csv_cells_hold_message_lists_as_json(store, tmp_path):
    path = tmp_path / "conv.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["chosen", "rejected", "score_chosen", "score_rejected"])
        writer.writeheader()
        for r in UF_ROWS:
            writer.writerow(
                {k: json.dumps(r[k]) if isinstance(r[k], list) else r[k] for k in writer.fieldnames}
            )
    report = import_preferences(store, str(path))
    assert (report.format, report.inserted) == ("ultrafeedback", 2)
    assert triples(store)[0].rejected == "Lyon."


def test_local_hf_dataset_saved_to_disk(store, tmp_path):
    import datasets

    folder = tmp_path / "hh_dataset"
    datasets.Dataset.from_list(HH_ROWS).save_to_disk(str(folder))
    report = import_preferences(store, str(folder))
    assert (report.source, report.format, report.inserted) == ("hh_dataset", "hh-rlhf", 2)
    assert triples(store)[0].annotator == "hh_dataset"


# -- detection, preview, forced format ----------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(TRL_ROWS, "trl"), (CONV_ROWS, "trl-conversational"), (UF_ROWS, "ultrafeedback"), (HH_ROWS, "hh-rlhf")],
)
def test_detection_and_preview(tmp_path, rows, expected):
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    preview = preview_preferences(str(path), 5)
    assert preview.format == expected
    assert "detected" in preview.detected
    assert [r["row"] for r in preview.rows] == [1, 2]
    assert preview.rows[1]["chosen"] in ("The Pacific.",)
    assert expected in preview.text()


def test_forced_format_overrides_detection_and_names_the_bad_field(store, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", TRL_ROWS)
    with pytest.raises(UserInputError) as err:
        import_preferences(store, str(path), format="trl-conversational")
    assert str(err.value).startswith(
        "prefs.jsonl row 1, field 'chosen': expected a list of {role, content} messages"
    )
    # A conversational file without scores can be read as ultrafeedback when forced (scores left empty).
    conv = write_jsonl(tmp_path / "conv.jsonl", CONV_ROWS)
    assert preview_preferences(str(conv), format="ultrafeedback").format == "ultrafeedback"
    report = import_preferences(store, str(conv), format="ultrafeedback")
    assert (report.format, report.detected, report.inserted) == ("ultrafeedback", "forced with --format", 2)


def test_prompt_only_files_are_detected_and_sent_to_the_prompt_importer(store, tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": Q1}, {"prompt": Q2}])
    assert preview_preferences(str(path)).format == "prompts"
    with pytest.raises(UserInputError, match="--format prompts"):
        read_preference_rows(str(path))
    args = Namespace(source=str(path), format="auto", split=None, skip_bad=False, heldout_percent=10, seed=0)
    from annotate.data_cli import cmd_import_preferences

    assert cmd_import_preferences(args, SimpleNamespace(store=store)) == 0
    assert counts(store)["prompts"] == 2 and counts(store)["pairs"] == 0


def test_unknown_columns_fail_in_one_line(tmp_path):
    path = write_jsonl(tmp_path / "odd.jsonl", [{"question": "x", "answer": "y"}])
    with pytest.raises(UserInputError) as err:
        preview_preferences(str(path))
    assert "odd.jsonl: cannot tell the format from columns [answer, question]" in str(err.value)
    assert "\n" not in str(err.value)
    # A column named by a line break (the fuzz test found one in a CSV header) is escaped, not printed.
    path = write_jsonl(tmp_path / "odd2.jsonl", [{"\n": None, "chosen": [], "rejected": []}])
    with pytest.raises(UserInputError) as err:
        preview_preferences(str(path))
    assert "columns ['\\n', chosen, rejected]" in str(err.value) and "\n" not in str(err.value)


# -- HH-RLHF parsing --------------------------------------------------------------------------


def test_hh_turns_split_on_markers_and_keep_inner_newlines():
    text = "\n\nHuman: line one\nline two\n\nAssistant: a\n\nHuman: b\n\nAssistant: final answer\n"
    assert hh_turns(text, "chosen") == [
        user("line one\nline two"),
        assistant("a"),
        user("b"),
        assistant("final answer"),
    ]
    assert hh_turns("Human: no leading blank line\n\nAssistant: ok", "chosen")[0] == user(
        "no leading blank line"
    )


@pytest.mark.parametrize(
    ("chosen", "rejected", "field", "message"),
    [
        (
            "\n\nHuman: a\n\nAssistant: b",
            "\n\nHuman: c\n\nAssistant: d",
            "chosen",
            "share no leading Human turn",
        ),
        ("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: a\n\nAssistant: b", "rejected", "identical to chosen"),
        ("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: a\n\nAssistant: b ", "rejected", "identical to chosen"),
        ("\n\nHuman: a", "\n\nHuman: a\n\nAssistant: b", "chosen", "no Assistant turn after"),
        ("preamble\n\nHuman: a\n\nAssistant: b", "\n\nHuman: a\n\nAssistant: c", "chosen", "text before"),
    ],
)
def test_hh_rows_that_are_not_one_prompt_with_two_replies(chosen, rejected, field, message):
    from annotate.import_readers import RowProblem

    with pytest.raises(RowProblem) as err:
        parse_row({"chosen": chosen, "rejected": rejected}, "hh-rlhf")
    assert err.value.field == field
    assert message in err.value.message


def hh(*turns: str) -> str:
    """An HH-RLHF string: alternating Human / Assistant turns, each after a blank line."""
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


# Rows as the canonical harmless-base test split has them: some final Assistant turns are empty, and
# some conversations part before their last turn.
HH_EMPTY_AND_EARLY = [
    {
        "chosen": hh("How do I pick a lock?", "I can't help with that."),
        "rejected": hh("How do I pick a lock?", ""),
    },
    {"chosen": hh("Say nothing.", ""), "rejected": hh("Say nothing.", "Okay, nothing.")},
    {  # parts at the first Assistant turn: the rest of each conversation is its response
        "chosen": hh("Hi", "Hello!", "Tell me a joke", "Why did the chicken..."),
        "rejected": hh("Hi", "Go away.", "Tell me a joke", "No."),
    },
    {  # parts at a Human turn: the shared Assistant turn before it starts both responses
        "chosen": hh("Hi", "Hello!", "Thanks", "You're welcome."),
        "rejected": hh("Hi", "Hello!", "Bye"),
    },
    {"chosen": hh("Name a colour.", "Blue."), "rejected": hh("Name a colour.", "Seven.")},
]


def test_hh_rows_with_empty_final_turns_and_early_divergence_import_without_skip_bad(store, tmp_path):
    path = tmp_path / "test.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in HH_EMPTY_AND_EARLY)
    report = import_preferences(store, str(path))
    assert (report.format, report.inserted, report.skipped_bad) == ("hh-rlhf", 5, 0)
    assert (report.empty_responses, report.diverged) == (2, 2)
    assert "2 empty response(s) kept" in report.summary()
    assert "2 row(s) part before the final turn" in report.summary()
    got = {(t.prompt[-1]["content"], t.chosen): (t.prompt, t.rejected) for t in triples(store)}
    assert got[("How do I pick a lock?", "I can't help with that.")][1] == ""
    assert got[("Say nothing.", "")][1] == "Okay, nothing."
    early = got[("Hi", "Hello!\n\nHuman: Tell me a joke\n\nAssistant: Why did the chicken...")]
    assert early == ([user("Hi")], "Go away.\n\nHuman: Tell me a joke\n\nAssistant: No.")
    at_human = got[("Hi", "Hello!\n\nHuman: Thanks\n\nAssistant: You're welcome.")]
    assert at_human == ([user("Hi")], "Hello!\n\nHuman: Bye")


def test_a_truly_malformed_hh_row_is_refused_naming_skip_bad(store, tmp_path):
    rows = [*HH_EMPTY_AND_EARLY[:2], {"chosen": "no turns at all", "rejected": hh("q", "a")}, HH_ROWS[0]]
    path = write_jsonl(tmp_path / "hh.jsonl", rows)
    before = counts(store)
    with pytest.raises(UserInputError) as err:
        import_preferences(store, str(path), format="hh-rlhf")
    assert str(err.value).startswith("hh.jsonl row 3, field 'chosen': no '\\n\\nHuman:'")
    assert str(err.value).endswith("--skip-bad skips such rows")
    assert counts(store) == before
    report = import_preferences(store, str(path), format="hh-rlhf", skip_bad=True)
    assert (report.inserted, report.skipped_bad, report.empty_responses) == (3, 1, 2)


def test_empty_responses_are_data_in_every_format(store, tmp_path):
    rows = [
        {"prompt": Q1, "chosen": "Paris.", "rejected": ""},
        {"chosen": [user(Q2), assistant("")], "rejected": [user(Q2), assistant("The Pacific.")]},
    ]
    write_jsonl(tmp_path / "trl.jsonl", rows[:1])
    write_jsonl(tmp_path / "conv.jsonl", rows[1:])
    assert import_preferences(store, str(tmp_path / "trl.jsonl")).empty_responses == 1
    assert import_preferences(store, str(tmp_path / "conv.jsonl")).empty_responses == 1
    assert sorted((t.chosen, t.rejected) for t in triples(store)) == [("", "The Pacific."), ("Paris.", "")]


def test_the_cli_imports_hh_rows_with_empty_turns_and_says_how_many(store, tmp_path, capsys):
    from annotate.data_cli import cmd_import_preferences

    path = write_jsonl(tmp_path / "harmless-base-test.jsonl", HH_EMPTY_AND_EARLY)
    args = Namespace(source=str(path), format="auto", split=None, skip_bad=False, heldout_percent=10, seed=0)
    assert cmd_import_preferences(args, SimpleNamespace(store=store)) == 0
    assert "5 pair(s) imported" in (last := capsys.readouterr().out.splitlines()[-1])
    assert "2 empty response(s) kept" in last


# -- bad rows, one transaction, repeats --------------------------------------------------------


def test_bad_row_names_file_row_field_and_writes_nothing(store, tmp_path):
    rows = [TRL_ROWS[0], {"prompt": Q2, "chosen": "ok"}, TRL_ROWS[1]]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    before = counts(store)
    with pytest.raises(UserInputError) as err:
        import_preferences(store, str(path))
    assert str(err.value) == "bad.jsonl row 2, field 'rejected': missing; --skip-bad skips such rows"
    assert counts(store) == before


def test_skip_bad_counts_malformed_rows(store, tmp_path):
    rows = [TRL_ROWS[0], {"prompt": Q2, "chosen": 3, "rejected": "x"}, "not an object", TRL_ROWS[1]]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    report = import_preferences(store, str(path), skip_bad=True)
    assert (report.rows_read, report.inserted, report.skipped_bad) == (4, 2, 2)
    assert report.bad_examples[0] == "bad.jsonl row 2, field 'chosen': expected a string, got a number"
    assert "bad.jsonl row 3: expected a JSON object" in report.bad_examples[1]


def test_a_failure_inside_the_transaction_leaves_nothing(store, tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "prefs.jsonl", TRL_ROWS)
    before = counts(store)
    real = DataQueries._insert_preferences

    def explode(cur, model_id, source, annotator):
        real(cur, model_id, source, annotator)  # everything inserted, then the commit never happens
        raise RuntimeError("disk full")

    monkeypatch.setattr(DataQueries, "_insert_preferences", staticmethod(explode))
    with pytest.raises(RuntimeError):
        import_preferences(store, str(path))
    assert counts(store) == before


def test_repeated_import_is_detected_and_skipped(store, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [*TRL_ROWS, TRL_ROWS[0]])  # one repeat inside the file too
    first = import_preferences(store, str(path))
    assert (first.inserted, first.duplicates) == (2, 1)
    after_first = counts(store)
    again = import_preferences(store, str(path))
    assert (again.inserted, again.duplicates, again.new_prompts) == (0, 3, 0)
    assert counts(store) == after_first
    # A new row in a later version of the file is imported; the old rows stay single.
    write_jsonl(path, [*TRL_ROWS, {"prompt": Q1, "chosen": "Paris.", "rejected": "Madrid."}])
    third = import_preferences(store, str(path))
    assert (third.inserted, third.duplicates, third.new_prompts) == (1, 2, 0)
    assert len(triples(store)) == 3


def test_existing_prompts_are_reused_with_their_split(store, tmp_path):
    pid = store.add_prompt([user(Q1)], "demo", "heldout")
    path = write_jsonl(tmp_path / "prefs.jsonl", TRL_ROWS)
    report = import_preferences(store, str(path), heldout_percent=0)
    assert report.new_prompts == 1
    first, second = triples(store)
    assert (first.prompt_id, first.split) == (pid, "heldout")
    assert second.split == "train"
    assert report.by_split == {"train": 1, "heldout": 1}


def test_splits_from_rows_flag_or_seed(store, tmp_path):
    rows = [{**TRL_ROWS[0], "split": "heldout"}, TRL_ROWS[1]]
    path = write_jsonl(tmp_path / "prefs.jsonl", rows)
    parsed = read_preference_rows(str(path), seed=7, heldout_percent=50)
    expected = assign_split(content_hash([user(Q2)]), seed=7, heldout_percent=50)
    assert [r.split for r in parsed.rows] == ["heldout", expected]
    forced = read_preference_rows(str(path), split="heldout", heldout_percent=0)
    assert [r.split for r in forced.rows] == ["heldout", "heldout"]
    with pytest.raises(UserInputError, match="split must be train or heldout"):
        read_preference_rows(str(path), split="validation")


# -- imported pairs in the rest of PrefLab ------------------------------------------------------


def test_imported_pairs_stay_out_of_the_annotate_queue_unless_drawn_for_overlap(store, tmp_path):
    """The queue counts any live label as done, so an import label fills a pair like a person's would."""
    import_preferences(store, str(write_jsonl(tmp_path / "prefs.jsonl", TRL_ROWS)))
    assert store.claim_pair("alice", timeout_s=60) is None
    # With overlap every pair may take a second label: then imported pairs do reach people for review.
    assert store.claim_pair("alice", timeout_s=60, overlap=1.0) is not None


def test_cli_prints_preview_and_summary(store, tmp_path, capsys):
    from annotate.data_cli import cmd_import_preferences

    path = write_jsonl(tmp_path / "hh.jsonl", HH_ROWS)
    args = Namespace(source=str(path), format="auto", split=None, skip_bad=False, heldout_percent=10, seed=0)
    assert cmd_import_preferences(args, SimpleNamespace(store=store)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("hh.jsonl: format hh-rlhf (detected: 2 of the first 2 row(s) look like hh-rlhf)")
    assert out[-1].startswith("hh.jsonl (hh-rlhf): 2 pair(s) imported")


def test_review_flag_puts_imported_pairs_in_front_of_people(store, tmp_path, capsys):
    from annotate.data_cli import cmd_import_preferences

    path = write_jsonl(tmp_path / "prefs.jsonl", TRL_ROWS)
    args = Namespace(
        source=str(path), format="auto", split=None, skip_bad=False, heldout_percent=10, seed=0, review=True
    )
    assert cmd_import_preferences(args, SimpleNamespace(store=store)) == 0
    assert f"{len(TRL_ROWS)} imported pair(s) queued for human review" in capsys.readouterr().out
    seen = set()
    while (pair := store.claim_pair("alice", timeout_s=60)) is not None:
        seen.add(pair)
        model = store.ensure_model("x", "x", [], "base")  # noqa: F841 - any live human label finishes a pair
        store.add_label(pair, "alice", "a")
        store.release_pair("alice", pair)
    assert len(seen) == len(TRL_ROWS)
    # Once a person labelled them, nobody else is asked (overlap 0), and the import label still trains.
    assert store.claim_pair("bob", timeout_s=60) is None
    sources = sorted({t.source for t in store.preference_triples()})
    assert sources == ["human", "import"]
