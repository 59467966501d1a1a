"""The demo SFT service and the end-to-end CLI flow import -> sft -> generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import UserInputError
from tests.serving import run_cli
from train.sft_config import SFTRunConfig
from train.sft_service import run_demo_sft

DEMO = Path(__file__).resolve().parents[2] / "data" / "incidents.jsonl"


def _fill(store, tiny_base_dir) -> None:
    """The tiny base as `tiny` and six train prompts with gold answers."""
    store.add_model("tiny", str(tiny_base_dir), [], "base")
    for i in range(6):
        store.add_prompt(
            [{"role": "user", "content": f"Triage report {i}: the api is down"}],
            "t",
            "train",
            gold={"answer": f"Severity: SEV{i % 4 + 1}", "severity": f"SEV{i % 4 + 1}"},
        )


@pytest.fixture
def ctx(tmp_path, tiny_base_dir):
    from common.context import AppConfig, build_context

    c = build_context(AppConfig(home=tmp_path / "home"))
    _fill(c.store, tiny_base_dir)
    yield c
    c.store.close()


@pytest.fixture
def home(tmp_path, tiny_base_dir):
    """A home the CLI opens itself (closed here: one process holds the database at a time)."""
    from store import Store

    home = tmp_path / "home"
    with Store.open(home / "preflab.duckdb") as store:
        _fill(store, tiny_base_dir)
    return home


def test_sft_registers_variant_and_records_run(ctx):
    steps = []
    result = run_demo_sft(
        ctx,
        SFTRunConfig(epochs=1, batch_size=2, grad_accum=1),
        base="tiny",
        progress=lambda s, n, _l: steps.append((s, n)),
    )
    assert result["variant"] == "sft" and result["steps"] == 3 and steps[-1] == (3, 3)
    sft = ctx.store.get_model("sft")
    assert (
        sft.kind == "sft"
        and len(sft.adapters) == 1
        and Path(sft.adapters[0], "adapter_config.json").is_file()
    )
    run = ctx.store.get_run(result["run_id"])
    assert run.status == "done" and run.kind == "sft" and run.dataset_hash
    # The registered variant loads through the pool like any other and differs from the base.
    tuned = ctx.generator.get("sft")
    assert tuned.fingerprint != ctx.generator.get("tiny").fingerprint


def test_a_cancelled_sft_registers_nothing_and_reads_cancelled(ctx):
    result = run_demo_sft(
        ctx, SFTRunConfig(epochs=1, batch_size=2, grad_accum=1), base="tiny", should_stop=lambda: True
    )
    assert result["stopped"] and result["variant"] is None
    # A half-trained adapter is not the user's `sft`: no variant, and the run says it was cancelled.
    assert ctx.store.get_model("sft") is None
    assert ctx.store.get_run(result["run_id"]).status == "cancelled"


def test_sft_run_done_and_variant_are_stored_together_or_not_at_all(ctx, monkeypatch):
    def broken_add_model(*_args, **_kwargs):
        raise RuntimeError("killed between the two writes")

    monkeypatch.setattr(ctx.store, "add_model", broken_add_model)
    with pytest.raises(RuntimeError):
        run_demo_sft(ctx, SFTRunConfig(epochs=1, batch_size=2, grad_accum=1), base="tiny")
    monkeypatch.undo()
    assert ctx.store.get_model("sft") is None
    (run,) = ctx.store.list_runs(kind="sft")
    assert run.status != "done"


def test_sft_refuses_without_gold_or_on_name_clash(ctx, tmp_path):
    with pytest.raises(UserInputError, match="already exists"):
        run_demo_sft(ctx, SFTRunConfig(), base="tiny", output_name="tiny")
    with pytest.raises(UserInputError, match="no variant"):
        run_demo_sft(ctx, SFTRunConfig(), base="nope")


SFT_ARGS = ["sft", "--base", "tiny", "--epochs", "1", "--batch-size", "2"]


def test_the_cli_sft_runs_as_the_tabs_train_job(home, capsys):
    from launch import main
    from store import Store
    from train.sft import sft_run_config
    from train.sft_service import start_demo_sft

    assert main(["--home", str(home), *SFT_ARGS]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run #") and out.rstrip().endswith("registered variant `sft`"), out
    with Store.open(home / "preflab.duckdb") as store:
        (job,) = store.jobs_with_status("train", ("done",))
        (run,) = store.list_runs(kind="sft")
    assert job.result["run_id"] == run.id and job.result["variant"] == "sft" and job.progress == job.total
    # The row the Train tab's Demo SFT button records for the same settings.
    started = []

    class Jobs:
        def start(self, kind, params, _body, **_kw):
            started.append((kind, params))
            return 1

    class Access:
        def require(self, *_a):
            pass

    tab = type("TabContext", (), {"jobs": Jobs(), "access": Access()})()
    start_demo_sft(tab, sft_run_config(epochs=1, batch_size=2))
    assert started == [(job.kind, job.params)]


def test_ctrl_c_stops_the_cli_sft_with_its_job_and_run_cancelled(home, capsys, monkeypatch):
    import train.sft
    from common.progress import STOP
    from launch import main
    from store import Store

    def stopped_at_the_first_step(_model, _examples, _out, _cfg, *, progress=None, should_stop=None):
        STOP.set()  # what the CLI's SIGTERM/Ctrl-C handler does
        progress(1, 3, {})
        raise AssertionError("the progress report did not stop the run")

    monkeypatch.setattr(train.sft, "run_sft", stopped_at_the_first_step)
    try:
        assert main(["--home", str(home), *SFT_ARGS]) == 130
    finally:
        STOP.clear()
    # The CLI's own output is one line; transformers' weight-loading bar may share stderr (when its bars are on).
    err = [line for line in capsys.readouterr().err.strip().split("\n") if "Loading weights" not in line]
    assert len(err) == 1 and err[0].startswith("interrupted"), err
    with Store.open(home / "preflab.duckdb") as store:
        (job,) = store.jobs_with_status("train", ("cancelled",))
        (run,) = store.list_runs(kind="sft")
        assert "interrupted" in (job.error or "") and job.progress == 0  # stopped before the row was written
        assert run.status == "cancelled" and store.get_model("sft") is None


@pytest.mark.slow
def test_cli_import_sft_generate_on_the_real_model(tmp_path, models_cache):
    home = tmp_path / "home"
    home.mkdir()
    # The session's converted default model (the conversion itself has its own test in tests/models).
    (home / "models").symlink_to(models_cache, target_is_directory=True)
    assert run_cli("import", str(DEMO), home=home).returncode == 0
    sft = run_cli("sft", "--limit", "8", "--batch-size", "4", home=home, timeout=600)
    assert sft.returncode == 0, sft.stderr
    assert "registered variant `sft`" in sft.stdout
    gen = run_cli(
        "generate", "--limit", "2", "--max-new-tokens", "16", "--batch-size", "4", home=home, timeout=600
    )
    assert gen.returncode == 0, gen.stderr
    assert "4 responses" in gen.stdout
    stats = json.loads(run_cli("stats", "--json", home=home).stdout)
    assert stats["counts"]["generations"] == 4
