"""Hub publishing: the dataset and adapter folders, the cards, a fake HfApi, offline and secret handling."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from annotate import hub
from annotate.data_cli import cmd_export
from annotate.export import ExportFilters, pseudonym, store_secret
from common.errors import PrefLabError, UserInputError
from tests.annotate.test_export import seed_store

FAKE_HF = "hf_FAKEtokenDoNotLeak1234567890"
FAKE_ANTHROPIC = "sk-ant-FAKEkeyDoNotLeak0987654321"


class FakeHfApi:
    """Records create_repo/upload_folder calls and the bytes of every file the upload would send."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        root = Path(kw["folder_path"])
        self.uploaded = {
            p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
        }
        return SimpleNamespace(commit_url=f"https://huggingface.co/{kw['repo_id']}/commit/abc")


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    return yaml.safe_load(head)


def export_args(**kw) -> Namespace:
    base = dict(
        format=None, output=None, hub=None, private=False, public=False, real_names=False, dry_run=None,
        adapter=None, source=None,
        annotator=None, since=None, until=None, agreement="any", ties="drop", license=None, dataset_repo=None,
    )  # fmt: skip
    return Namespace(**{**base, **kw})


@pytest.fixture
def secrets_env(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_HF)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC)


@pytest.fixture
def seeded(store, tmp_path):
    seed_store(store, tmp_path)
    return store


@pytest.fixture
def fake_api(monkeypatch):
    api = FakeHfApi()
    monkeypatch.setattr(hub, "make_hf_api", lambda: api)
    return api


def assert_no_secrets(root: Path) -> None:
    for name, data in folder_bytes(root).items():
        assert FAKE_HF.encode() not in data, name
        assert FAKE_ANTHROPIC.encode() not in data, name


# -- dataset ------------------------------------------------------------------------------------


def test_push_uploads_exactly_the_dry_run_folder(seeded, tmp_path, secrets_env, fake_api, capsys):
    ctx = SimpleNamespace(store=seeded)
    dry = tmp_path / "dry"
    assert cmd_export(export_args(hub="acme/incident-prefs", dry_run=str(dry)), ctx) == 0
    assert "nothing uploaded" in capsys.readouterr().out
    assert fake_api.calls == []
    assert sorted(folder_bytes(dry)) == [
        "README.md",
        "data/heldout-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
    ]
    assert cmd_export(export_args(hub="acme/incident-prefs", private=True), ctx) == 0
    (create, kw_create), (upload, kw_upload) = fake_api.calls
    assert (create, kw_create["repo_id"], kw_create["repo_type"]) == (
        "create_repo",
        "acme/incident-prefs",
        "dataset",
    )
    assert (kw_create["private"], kw_create["exist_ok"], kw_create["token"]) == (True, True, FAKE_HF)
    assert (upload, kw_upload["repo_type"], kw_upload["token"]) == ("upload_folder", "dataset", FAKE_HF)
    assert fake_api.uploaded == folder_bytes(dry)
    assert "published train 5, heldout 1 to acme/incident-prefs (private)" in capsys.readouterr().out
    assert_no_secrets(dry)


def test_dataset_card_yaml_and_body(seeded, tmp_path, secrets_env):
    folder = hub.build_dataset_folder(seeded, tmp_path / "ds", ExportFilters(), name="acme/incident-prefs")
    card = (folder.path / "README.md").read_text(encoding="utf-8")
    meta = front_matter(card)
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*"},
                {"split": "heldout", "path": "data/heldout-*"},
            ],
        }
    ]
    info = meta["dataset_info"]
    assert [(s["name"], s["num_examples"]) for s in info["splits"]] == [("train", 5), ("heldout", 1)]
    assert [f["name"] for f in info["features"]][:3] == ["prompt", "chosen", "rejected"]
    assert info["features"][0]["list"] == [
        {"name": "role", "dtype": "string"},
        {"name": "content", "dtype": "string"},
    ]
    assert (meta["license"], meta["task_categories"], meta["size_categories"]) == (
        "other",
        ["text-generation"],
        ["n<1K"],
    )
    assert "dpo" in meta["tags"]
    body = card.split("\n---\n", 1)[1]
    # How it was made: generation settings, judge + rubric, annotators, agreement, sources, tie policy.
    assert "| sft | 0.7 | 0.95 | 256 | temperatures | no |" in body
    assert "sft | sft | HuggingFaceTB/SmolLM2-135M-Instruct | sft (local)" in body  # adapter path not leaked
    assert "/home/alice" not in card
    rubric = seed_rubric_hash()
    assert f"| rule | - | {rubric} |" in body and f"Rubric `{rubric}` (excerpt)" in body
    alice = pseudonym(store_secret(seeded), "alice")  # logins are pseudonymised by default
    assert f"| human | {alice} | 3 |" in body and "| import | public_prefs.jsonl | 2 |" in body
    assert "| suggestion shown | 2 | 0.5 |" in body  # alice followed 1 of 2 shown suggestions
    assert "Override rate (human decided against a shown suggestion): 0.5" in body
    assert "ties and both-bad labels are **dropped** (2 left out)" in body
    assert "**import**: a preference taken from an existing dataset" in body


def seed_rubric_hash() -> str:
    from models.judge_rubric import default_rubric, rubric_hash

    return rubric_hash(default_rubric())


def test_the_folder_loads_as_a_hub_dataset(seeded, tmp_path):
    import datasets

    folder = hub.build_dataset_folder(seeded, tmp_path / "ds", ExportFilters(), name="acme/x")
    loaded = datasets.load_dataset(str(folder.path), cache_dir=str(tmp_path / "cache"))
    assert {k: len(v) for k, v in loaded.items()} == {"train": 5, "heldout": 1}
    assert loaded["heldout"][0]["chosen"] == [
        {"role": "assistant", "content": "Severity: SEV3. Edited by alice."}
    ]


def test_dry_run_refuses_a_folder_with_files(seeded, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "old.txt").write_text("x")
    with pytest.raises(UserInputError, match="not an empty folder"):
        hub.build_dataset_folder(seeded, tmp_path / "busy", name="acme/x")


def test_no_secrets_in_exports_or_folders(seeded, tmp_path, secrets_env):
    from annotate.export import export_dataset

    out = tmp_path / "files"
    export_dataset(seeded, out / "p.jsonl")
    export_dataset(seeded, out / "p.parquet")
    hub.build_dataset_folder(seeded, out / "ds", name="acme/x")
    assert_no_secrets(out)


# -- upload failures -----------------------------------------------------------------------------


def test_offline_push_fails_in_one_line_with_the_real_client(seeded, tmp_path, monkeypatch, secrets_env):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    folder = hub.build_dataset_folder(seeded, tmp_path / "ds", name="acme/x")
    with pytest.raises(PrefLabError) as err:
        hub.push_folder(
            hub.make_hf_api(), "acme/x", folder.path, repo_type="dataset", private=False, token=FAKE_HF
        )
    message = str(err.value)
    assert message.startswith("cannot push to the Hub: offline mode is on (HF_HUB_OFFLINE=1)")
    assert "\n" not in message and FAKE_HF not in message
    with pytest.raises(PrefLabError, match="offline mode is on"):
        cmd_export(export_args(hub="acme/x"), SimpleNamespace(store=seeded))


def test_missing_token_and_hub_errors_are_one_line(seeded, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "hub_token", lambda: None)
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    with pytest.raises(UserInputError, match="no Hugging Face token: set HF_TOKEN or run `hf auth login`"):
        hub.publish_dataset(seeded, "acme/x", api=FakeHfApi())

    class Refusing(FakeHfApi):
        def create_repo(self, repo_id, **kw):
            raise RuntimeError(f"403 Forbidden for token {kw['token']}\nmore detail")

    with pytest.raises(PrefLabError) as err:
        hub.publish_dataset(seeded, "acme/x", api=Refusing(), token=FAKE_HF)
    assert str(err.value) == "cannot push to acme/x on the Hub: 403 Forbidden for token ***"


@pytest.mark.parametrize("repo", ["noslash", "a/b/c", "-bad/name", "org/../x"])
def test_repo_ids_are_checked(repo):
    with pytest.raises(UserInputError, match="--hub must be ORG/NAME"):
        hub.check_repo_id(repo)


# -- adapter ------------------------------------------------------------------------------------


def make_run(store, tmp_path: Path, *, with_eval: bool) -> int:
    adapter = tmp_path / "runs" / "1" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00weights\x01")
    (adapter / "training_args.bin").write_bytes(b"pickled " + FAKE_HF.encode())
    (adapter / "checkpoint-1").mkdir()
    (adapter / "checkpoint-1" / "optimizer.pt").write_bytes(b"state")
    sft = store.get_model("sft")
    config = {
        "beta": 0.1,
        "learning_rate": 5e-6,
        "hub_token": FAKE_HF,
        "output_dir": "/home/alice/run1",
        "lora_r": 8,
    }
    result = {
        "train_pairs": 40,
        "val_pairs": 8,
        "sources": {"human": 30, "import": 18},
        "steps": 12,
        "report": "/home/alice/r.md",
    }
    run_id = (
        store.cursor()
        .execute(
            "INSERT INTO runs (kind, config, dataset_hash, model_id, ref_model_id, status, adapter_path, result) "
            "VALUES ('dpo', ?, 'abc123hash', ?, ?, 'done', ?, ?) RETURNING id",
            [json.dumps(config), sft.id, sft.id, str(adapter), json.dumps(result)],
        )
        .fetchall()[0][0]
    )
    dpo = store.add_model(f"sft+dpo@{run_id}", sft.base, [*sft.adapters, str(adapter)], "dpo")
    if with_eval:
        prompt_ids = [r.id for r in store.list_prompts(split="heldout")]
        eval_id = (
            store.cursor()
            .execute(
                "INSERT INTO eval_runs (variants, prompt_set) VALUES (?, 'heldout') RETURNING id",
                [json.dumps(["sft", dpo.name])],
            )
            .fetchall()[0][0]
        )
        for model, value in ((sft.id, 0.25), (dpo.id, 0.75)):
            store.cursor().execute(
                "INSERT INTO eval_scores VALUES (?, ?, ?, 'rule', ?)", [eval_id, prompt_ids[0], model, value]
            ).fetchall()
    return int(run_id)


def test_adapter_push_equals_dry_run_and_the_card_has_lineage_and_evals(
    seeded, tmp_path, secrets_env, fake_api
):
    run_id = make_run(seeded, tmp_path, with_eval=True)
    ctx = SimpleNamespace(store=seeded)
    dry = tmp_path / "adapter-dry"
    assert (
        cmd_export(
            export_args(
                adapter=str(run_id), hub="acme/dpo", dry_run=str(dry), dataset_repo="acme/incident-prefs"
            ),
            ctx,
        )
        == 0
    )
    assert sorted(folder_bytes(dry)) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    assert (
        cmd_export(
            export_args(adapter=f"sft+dpo@{run_id}", hub="acme/dpo", dataset_repo="acme/incident-prefs"), ctx
        )
        == 0
    )
    assert fake_api.calls[0][1]["repo_type"] == "model" and fake_api.calls[1][1]["repo_type"] == "model"
    assert fake_api.uploaded == folder_bytes(dry)
    card = (dry / "README.md").read_text(encoding="utf-8")
    meta = front_matter(card)
    assert (meta["library_name"], meta["base_model"], meta["datasets"]) == (
        "peft", "HuggingFaceTB/SmolLM2-135M-Instruct", ["acme/incident-prefs"],
    )  # fmt: skip
    assert "| dataset snapshot hash | abc123hash |" in card
    assert "| dataset size | train pairs 40, val pairs 8 |" in card
    assert "| policy variant | sft |" in card and "| adapters below this one | sft (local) |" in card
    assert "| beta | 0.1 |" in card
    assert f"| sft+dpo@{run_id} | rule | 0.75 | 1 |" in card and "| sft | rule | 0.25 | 1 |" in card
    assert "/home/alice" not in card and "hub_token" not in card
    assert_no_secrets(dry)


def test_adapter_card_without_an_eval_says_so(seeded, tmp_path):
    run_id = make_run(seeded, tmp_path, with_eval=False)
    folder = hub.build_adapter_folder(seeded, run_id, tmp_path / "out")
    assert "No evaluation of this adapter yet" in (folder.path / "README.md").read_text()


def test_adapter_errors(seeded, tmp_path):
    with pytest.raises(UserInputError, match="no training run #99"):
        hub.build_adapter_folder(seeded, 99, tmp_path / "x")
    with pytest.raises(UserInputError, match="--adapter needs --hub"):
        cmd_export(export_args(adapter="1"), SimpleNamespace(store=seeded))
    with pytest.raises(UserInputError, match="run id"):
        cmd_export(export_args(adapter="latest", hub="acme/x"), SimpleNamespace(store=seeded))


# -- privacy defaults ---------------------------------------------------------------------------


def test_hub_repos_are_private_unless_public(seeded, tmp_path, secrets_env, fake_api, capsys):
    ctx = SimpleNamespace(store=seeded)
    assert cmd_export(export_args(hub="acme/prefs"), ctx) == 0
    assert fake_api.calls[0][1]["private"] is True
    assert "(private)" in capsys.readouterr().out
    fake_api.calls.clear()
    assert cmd_export(export_args(hub="acme/prefs", public=True), ctx) == 0
    assert fake_api.calls[0][1]["private"] is False
    assert "(public)" in capsys.readouterr().out
    with pytest.raises(UserInputError, match="--public"):
        cmd_export(export_args(hub="acme/prefs", public=True, private=True), ctx)
    run_id = make_run(seeded, tmp_path, with_eval=False)
    fake_api.calls.clear()
    assert cmd_export(export_args(adapter=str(run_id), hub="acme/dpo"), ctx) == 0
    assert fake_api.calls[0][1]["private"] is True


def test_the_dataset_card_and_files_name_pseudonyms_unless_real_names(seeded, tmp_path, fake_api):
    import pyarrow.parquet as pq

    ctx = SimpleNamespace(store=seeded)
    dry = tmp_path / "dry"
    args = dict(hub="acme/prefs", ties="keep", annotator=["alice", "bob"])
    assert cmd_export(export_args(dry_run=str(dry), **args), ctx) == 0
    card = (dry / "README.md").read_text(encoding="utf-8")
    names = set(pq.read_table(dry / "data" / "train-00000-of-00001.parquet").column("annotator").to_pylist())
    assert names and all(n.startswith("annotator-") for n in names), names
    rows_about_people = [line for line in card.splitlines() if "| human |" in line or "Filters:" in line]
    assert rows_about_people and not any("alice" in r or "bob" in r for r in rows_about_people)
    assert all(n in card for n in names)
    # The same install gives the same pseudonyms on every export; --real-names keeps the logins.
    again = tmp_path / "again"
    assert cmd_export(export_args(dry_run=str(again), **args), ctx) == 0
    assert (again / "README.md").read_text(encoding="utf-8") == card
    real = tmp_path / "real"
    assert cmd_export(export_args(dry_run=str(real), real_names=True, **args), ctx) == 0
    real_names = pq.read_table(real / "data" / "train-00000-of-00001.parquet").column("annotator").to_pylist()
    assert {"alice", "bob"} <= set(real_names)
