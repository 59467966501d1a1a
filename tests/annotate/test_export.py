"""Export: TRL conversational JSONL/Parquet with provenance, filters, atomic writes, and one DPO step on the file."""

from __future__ import annotations

import json
from argparse import Namespace
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from annotate.export import ExportFilters, export_dataset, pseudonym, select, store_secret
from common.errors import UserInputError
from store import Store, VerdictRow

SFT_ADAPTER = "/home/alice/preflab_home/adapters/sft"


def seed_store(store: Store, tmp_path: Path) -> dict:
    """Six labelled pairs (human a/b/tie/both_bad, a judge label, an edit) plus two imported ones."""
    from annotate.pref_import import import_preferences
    from models.judge_rubric import default_rubric, rubric_hash

    sft = store.add_model("sft", "HuggingFaceTB/SmolLM2-135M-Instruct", [SFT_ADAPTER], "sft")
    rubric = rubric_hash(default_rubric())
    pairs = []
    for i in range(6):
        pid = store.add_prompt(
            [{"role": "user", "content": f"Triage incident {i}: checkout is slow"}],
            "incidents.jsonl",
            "heldout" if i == 5 else "train",
        )
        gens = [
            store.add_generation(
                pid,
                sft.id,
                f"Severity: SEV{i % 3 + 1}. Roll back deploy {i}." if slot == 0 else f"no idea about {i}",
                params={
                    "temperature": t,
                    "top_p": 0.95,
                    "max_new_tokens": 256,
                    "slot": slot,
                    "strategy": "temperatures",
                },
                seed=1000 + 10 * i + slot,
            )
            for slot, t in enumerate((0.7, 1.2))
        ]
        pairs.append(store.add_pair(pid, *gens))
    p = pairs
    store.add_label(p[0], "alice", "a", suggestion="a", suggestion_shown=True)
    store.add_label(p[1], "alice", "b", suggestion="a", suggestion_shown=True)  # an override
    store.add_label(p[2], "bob", "tie")
    store.add_label(p[3], "bob", "both_bad")
    store.add_label(p[4], "judge:rule", "a", source="judge", suggestion="a")
    store.add_label(p[5], "alice", "a", chosen_edit="Severity: SEV3. Edited by alice.")
    verdicts = []
    for pair, winners in ((p[0], ("a", "a")), (p[1], ("a", "a")), (p[4], ("a", "a")), (p[2], ("a", "b"))):
        for order, winner in zip(("ab", "ba"), winners, strict=True):
            verdicts.append(
                VerdictRow(
                    pair,
                    "rule",
                    None,
                    rubric,
                    order,
                    winner,
                    f"{order}: response A names a severity",
                    0.9,
                    None,
                )
            )
    store.add_verdicts(verdicts)
    rows = [
        {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Berlin."},
        {"prompt": "Name a large ocean.", "chosen": "The Pacific.", "rejected": "The Moon."},
    ]
    path = tmp_path / "public_prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    import_preferences(store, str(path), heldout_percent=0)
    return {"pairs": pairs, "rubric": rubric}


@pytest.fixture
def seeded(store, tmp_path):
    seed_store(store, tmp_path)
    return store


def by_pair(records: list[dict]) -> dict[int, dict]:
    return {r["pair_id"]: r for r in records}


def load(path: Path, kind: str, tmp_path: Path):
    import datasets

    return datasets.load_dataset(
        kind, data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache")
    )


# -- content and provenance --------------------------------------------------------------------


def test_records_are_trl_conversational_with_provenance(seeded):
    chosen = select(seeded)
    rows = by_pair(chosen.records)
    assert sorted(rows) == [1, 2, 5, 6, 7, 8]  # ties and both-bad (pairs 3, 4) dropped by default
    assert chosen.dropped == {"ties/both-bad": 2}
    first = rows[1]
    assert first["prompt"] == [{"role": "user", "content": "Triage incident 0: checkout is slow"}]
    assert first["chosen"] == [{"role": "assistant", "content": "Severity: SEV1. Roll back deploy 0."}]
    assert first["rejected"] == [{"role": "assistant", "content": "no idea about 0"}]
    assert (first["source"], first["annotator"], first["decision"], first["override"]) == (
        "human",
        pseudonym(store_secret(seeded), "alice"),  # people's logins are pseudonymised by default
        "a",
        False,
    )
    assert (first["judge"], first["judge_verdict"]) == ("rule", "a")
    assert first["judge_rationale"] == "ab: response A names a severity"
    assert json.loads(first["chosen_params"]) == {
        "max_new_tokens": 256, "seed": 1000, "slot": 0, "strategy": "temperatures", "temperature": 0.7, "top_p": 0.95,
    }  # fmt: skip
    # decision b: the chosen side is gen_b; the human overrode the shown suggestion.
    second = rows[2]
    assert second["chosen"][0]["content"] == "no idea about 1"
    assert (second["decision"], second["suggestion"], second["suggestion_shown"], second["override"]) == (
        "b", "a", True, True,
    )  # fmt: skip
    assert rows[6]["edited"] is True and rows[6]["chosen"][0]["content"] == "Severity: SEV3. Edited by alice."
    assert rows[6]["split"] == "heldout"
    assert (rows[5]["source"], rows[5]["annotator"]) == ("judge", "judge:rule")
    imported = rows[7]
    assert (imported["source"], imported["annotator"], imported["chosen_model"]) == (
        "import", "public_prefs.jsonl", "imported:public_prefs.jsonl",
    )  # fmt: skip
    assert imported["override"] is None and imported["judge"] is None


def test_tie_policy_keep_and_unsure_verdicts(seeded):
    rows = by_pair(select(seeded, ExportFilters(ties="keep")).records)
    assert rows[3]["decision"] == "tie" and rows[4]["decision"] == "both_bad"
    assert rows[3]["judge_verdict"] == "unsure"  # the two orders disagreed


@pytest.mark.parametrize(
    ("filters", "pairs"),
    [
        (ExportFilters(sources=("human",)), [1, 2, 6]),
        (ExportFilters(sources=("import", "judge")), [5, 7, 8]),
        (ExportFilters(annotators=("alice",)), [1, 2, 6]),
        (ExportFilters(agreement="agree"), [1, 5]),
        (ExportFilters(agreement="disagree"), [2]),
        (ExportFilters(split="heldout"), [6]),
        (
            ExportFilters(since=date.today() - timedelta(days=1), until=date.today() + timedelta(days=1)),
            [1, 2, 5, 6, 7, 8],
        ),
    ],
)
def test_filters(seeded, filters, pairs):
    assert sorted(r["pair_id"] for r in select(seeded, filters).records) == pairs


def test_filters_reject_bad_values_in_one_line():
    with pytest.raises(UserInputError, match="source must be one of human, judge, import; got 'robot'"):
        ExportFilters(sources=("robot",))
    with pytest.raises(UserInputError, match="since must be a date like 2025-01-31; got '31/01'"):
        ExportFilters(since="31/01")
    with pytest.raises(UserInputError, match="after until"):
        ExportFilters(since="2025-02-01", until="2025-01-01")


def test_a_date_range_outside_every_label_exports_nothing(seeded, tmp_path):
    old = ExportFilters(until=date.today() - timedelta(days=30))
    with pytest.raises(UserInputError, match="nothing to export: all 8 confirmed triple"):
        export_dataset(seeded, tmp_path / "x.jsonl", filters=old)
    assert not (tmp_path / "x.jsonl").exists()


def test_empty_store_says_so(store, tmp_path):
    with pytest.raises(UserInputError, match="no confirmed labels yet"):
        export_dataset(store, tmp_path / "x.jsonl")


# -- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "kind"), [(".jsonl", "json"), (".parquet", "parquet")])
def test_round_trip_through_load_dataset(seeded, tmp_path, suffix, kind):
    path = tmp_path / "out" / f"prefs{suffix}"
    report = export_dataset(seeded, path)
    assert (report.rows, report.by_split) == (6, {"train": 5, "heldout": 1})
    ds = load(path, kind, tmp_path)
    assert len(ds) == 6
    assert ds.column_names[:3] == ["prompt", "chosen", "rejected"]
    expected = select(seeded).records
    assert ds[1]["chosen"] == expected[1]["chosen"] and ds[1]["override"] is True
    assert [r["pair_id"] for r in ds] == [r["pair_id"] for r in expected]
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary file left behind


def test_format_flag_and_unknown_suffix(seeded, tmp_path):
    report = export_dataset(seeded, tmp_path / "prefs.data", format="parquet")
    assert report.format == "parquet"
    with pytest.raises(UserInputError, match="pass --format jsonl or parquet"):
        export_dataset(seeded, tmp_path / "prefs.data")


def test_write_is_atomic_on_failure(seeded, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    out = tmp_path / "exports"
    out.mkdir()
    path = out / "prefs.parquet"
    path.write_bytes(b"previous export")

    def broken(table, where, **kw):
        Path(where).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError):
        export_dataset(seeded, path)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in out.iterdir()] == ["prefs.parquet"]


def test_cli_export_to_a_file(seeded, tmp_path, capsys):
    from annotate.data_cli import cmd_export

    out = tmp_path / "human.jsonl"
    args = Namespace(
        format=None, output=str(out), hub=None, private=False, dry_run=None, adapter=None,
        source=["human"], annotator=None, since=None, until=None, agreement="any", ties="drop", license=None,
    )  # fmt: skip
    assert cmd_export(args, SimpleNamespace(store=seeded)) == 0
    assert len(out.read_text().splitlines()) == 3
    assert capsys.readouterr().out.startswith("wrote 3 triple(s) (train 2, heldout 1)")


def test_add_export_arguments_keeps_flags_the_parser_has():
    import argparse

    from annotate.data_cli import add_export_arguments, filters_from_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--format", choices=["jsonl", "parquet"])
    parser.add_argument("--hub")
    add_export_arguments(parser)
    args = parser.parse_args(
        ["--source", "human", "--source", "import", "--agreement", "agree", "--since", "2025-01-01"]
    )
    filters = filters_from_args(args)
    assert (filters.sources, filters.agreement, filters.since, filters.ties) == (
        ("human", "import"), "agree", date(2025, 1, 1), "drop",
    )  # fmt: skip


# -- TRL accepts the file as is ------------------------------------------------------------------


def test_dpo_trainer_runs_one_step_on_the_exported_file(seeded, tmp_path):
    import torch
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from tests.models.tiny_models import build_tiny_model, build_tokenizer

    path = tmp_path / "prefs.jsonl"
    export_dataset(seeded, path)
    dataset = load(path, "json", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(tmp_path / "tok"))
    model = build_tiny_model(tokenizer, dtype=torch.float32)
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        logging_steps=1,
        max_length=128,
    )
    # A model built from a config has no path for TRL to load the reference from: pass a twin.
    ref = build_tiny_model(tokenizer, dtype=torch.float32)
    trainer = DPOTrainer(
        model=model, ref_model=ref, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    result = trainer.train()
    assert result.global_step == 1
    assert torch.isfinite(torch.tensor(result.training_loss))


def test_annotator_logins_are_pseudonymised_stably_unless_real_names(seeded, tmp_path):
    rows = by_pair(select(seeded, ExportFilters(ties="keep")).records)
    alice, bob = rows[1]["annotator"], rows[3]["annotator"]
    assert alice.startswith("annotator-") and bob.startswith("annotator-") and alice != bob
    assert rows[2]["annotator"] == rows[6]["annotator"] == alice  # one person, one pseudonym
    assert (rows[5]["annotator"], rows[7]["annotator"]) == ("judge:rule", "public_prefs.jsonl")  # not people
    assert by_pair(select(seeded).records)[1]["annotator"] == alice  # stable: an HMAC with the install secret
    assert by_pair(select(seeded, secret=b"another install".ljust(32)).records)[1]["annotator"] != alice
    assert by_pair(select(seeded, real_names=True).records)[1]["annotator"] == "alice"
    # The filter still takes the login.
    assert sorted(r["pair_id"] for r in select(seeded, ExportFilters(annotators=("alice",))).records) == [
        1,
        2,
        6,
    ]
    path = tmp_path / "prefs.jsonl"
    export_dataset(seeded, path, filters=ExportFilters(ties="keep"))
    written = {json.loads(line)["annotator"] for line in path.read_text().splitlines()}
    assert {alice, bob} <= written and not {"alice", "bob"} & written
