"""What the Train tab shows comes from train/runs_view.py: the runs, metrics, status, report and curves of the store
and the run folders, read in one place."""

from __future__ import annotations

import pytest

from train.rundir import REFERENCE, REPORT, RunDir
from train.runs_view import dpo_runs, sft_job_text, train_overview


@pytest.fixture
def ctx(tmp_path):
    from types import SimpleNamespace

    from common.context import AppConfig
    from store import Store

    cfg = AppConfig(home=tmp_path / "home")
    cfg.paths.ensure()
    store = Store.open(cfg.paths.db)
    yield SimpleNamespace(cfg=cfg, store=store, jobs=None)
    store.close()


def dpo_run(ctx, status: str | None = None) -> int:
    run = ctx.store.create_run("dpo", {}, dataset_hash="h", model_id=None, ref_model_id=None)
    if status:
        ctx.store.finish_run(run.id, status=status, error=None if status == "done" else "stopped", result={})
    return run.id


def test_an_empty_home_has_no_latest_run(ctx):
    view = train_overview(ctx)
    assert view.latest is None and view.runs == [] and view.metrics.empty
    assert not view.has_sft and view.counts["runs"] == 0


def test_the_latest_run_brings_its_metrics_report_and_a_served_copy_of_its_curves(ctx):
    first, latest = dpo_run(ctx, "failed"), dpo_run(ctx, "done")
    ctx.store.add_run_metrics(first, [(1, "train", "loss", 0.7)])
    ctx.store.add_run_metrics(latest, [(1, "train", "loss", 0.69), (1, "eval", "rewards/margins", 0.1)])
    rd = RunDir(ctx.cfg.paths.runs / str(latest))
    rd.path.mkdir(parents=True)
    (rd / REPORT).write_text("# Run\n![curves](curves.png)\nReward gap\n")
    (rd / "curves.png").write_bytes(b"png")
    rd.write_json(REFERENCE, {"truncated_pairs": 1, "pairs": 4})

    view = train_overview(ctx)
    assert [r.id for r in view.runs] == [latest, first] and [r.id for r in dpo_runs(ctx)] == [first, latest]
    assert set(view.metrics["run_id"]) == {first, latest}
    assert view.latest.run.id == latest and view.latest.progress == ""
    assert view.latest.reference == {"truncated_pairs": 1, "pairs": 4}
    assert "Reward gap" in view.latest.report
    # Nothing under the home is served: the tab gets a copy in the served charts folder.
    assert view.latest.curves.read_bytes() == b"png" and not view.latest.curves.is_relative_to(rd.path)


def test_a_running_run_shows_its_step_and_no_report_yet(ctx):
    run_id = dpo_run(ctx)
    job = ctx.store.create_job("train", {"run_id": run_id})
    ctx.store.update_job(job, status="running", progress=3, total=40)
    rd = RunDir(ctx.cfg.paths.runs / str(run_id))
    rd.path.mkdir(parents=True)
    (rd / REPORT).write_text("stale")
    latest = train_overview(ctx).latest
    assert latest.progress == " · step 3/40" and latest.report == "" and latest.curves is None


def test_the_sft_job_line(ctx):
    assert sft_job_text(ctx, 99) is None
    job = ctx.store.create_job("train", {"sft": True})
    ctx.store.update_job(job, status="running", progress=2, total=9)
    assert sft_job_text(ctx, job) == f"SFT: step 2/9 (job #{job})"
    ctx.store.update_job(job, status="failed", error="boom")
    assert sft_job_text(ctx, job) == f"SFT job #{job} failed: boom"
