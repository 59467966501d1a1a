"""DPO runs end to end from triples in a store: worker subprocess, ingestion, cancel, crash, refusals."""

from __future__ import annotations

import json
import os
import signal

import pytest

from common.errors import UserInputError
from tests.train.dpo_fixtures import in_process, make_ctx, tiny_config, tiny_sft  # noqa: F401
from tests.train.test_dpo_trainer import ForwardCounter
from train.rundir import RunDir
from train.service import cancel_training, run_training, start_training


@pytest.fixture
def ctx(tmp_path, tiny_sft):  # noqa: F811
    context = make_ctx(tmp_path / "home", tiny_sft, n_triples=16)
    yield context
    context.store.close()


def labels(ctx) -> list[tuple]:
    """Every label row, superseded ones included: training must never change them."""
    return ctx.store.cursor().execute("SELECT * FROM labels ORDER BY id").fetchall()


def test_tiny_dpo_end_to_end_in_a_worker_subprocess(ctx):
    before = labels(ctx)
    seen = []
    result = run_training(ctx, tiny_config(), progress=seen.append)
    assert result.status == "done", result.error
    run = ctx.store.get_run(result.run_id)
    rd = RunDir(result.run_dir)
    assert rd.path == ctx.cfg.paths.runs / str(run.id)
    # The run row: lineage and outcome.
    sft = ctx.store.get_model("sft")
    assert (run.kind, run.status, run.model_id, run.ref_model_id) == ("dpo", "done", sft.id, sft.id)
    assert run.dataset_hash == result.summary["dataset_hash"] and len(run.dataset_hash) == 64
    assert run.config["beta"] == 0.1 and run.adapter_path == str(rd.adapter)
    assert run.result["train_pairs"] + run.result["val_pairs"] == 16 and run.ended_at is not None
    # The adapter is registered on top of the SFT adapters.
    model = ctx.store.get_model(f"sft+dpo@{run.id}")
    assert (model.kind, model.base, model.adapters) == ("dpo", sft.base, [*sft.adapters, str(rd.adapter)])
    # LoRA B matrices left zero init: training changed them.
    from safetensors.torch import load_file

    weights = load_file(rd.adapter / "adapter_model.safetensors")
    b_norms = [float(w.abs().max()) for name, w in weights.items() if "lora_B" in name]
    assert b_norms and min(b_norms) > 0
    # The registered variant loads and scores differently from the SFT variant.
    dpo, plain = ctx.generator.get(model.name), ctx.generator.get("sft")
    prompt = [[{"role": "user", "content": "what color is the cat number 3?"}]]
    assert dpo.score(prompt, ["the cat is red."]) != pytest.approx(plain.score(prompt, ["the cat is red."]))
    # Metrics: train and eval rows with reward margins, and the KL estimate.
    frame = ctx.store.run_metrics_frame([run.id])
    names = set(zip(frame["split"], frame["name"], strict=True))
    for wanted in [
        ("train", "loss"),
        ("train", "rewards/margins"),
        ("eval", "rewards/margins"),
        ("eval", "rewards/accuracies"),
        ("train", "kl"),
        ("train", "rewards/chosen"),
    ]:
        assert wanted in names
    assert frame[frame["split"] == "train"]["step"].max() == 6
    # Reference log-probs were computed once and cached; the worker made no reference forward beyond KL.
    assert ctx.store.count_ref_logps() == 32 and result.summary["ref_computed"] == 32
    assert result.summary["kl_ref_forwards"] == 3
    # Files of the run folder, and live progress through every phase.
    for name in (
        "config.json",
        "train.parquet",
        "val.parquet",
        "metrics.jsonl",
        "status.json",
        "worker.log",
        "report.md",
        "curves.png",
    ):
        assert (rd / name).is_file(), name
    # The reference pass runs in the worker: a poll sees it only when it lasts long enough.
    assert {"loading", "training"} <= {p.phase for p in seen} <= {"loading", "reference", "training"}
    assert max(p.step for p in seen if p.phase == "training") == 6
    assert json.loads((rd / "config.json").read_text())["dtype"] == "float64"
    assert "val reward accuracy" in result.summary_line() and labels(ctx) == before


def test_beta_sweep_second_run_makes_no_reference_forwards(ctx):
    from tests.train.test_worker_reference import ReferenceForwards

    scorer = ReferenceForwards()  # the worker's forwards before its trainer exists: the reference pass
    counters = []

    def hook(trainer):
        scorer.on_trainer(trainer)
        counters.append(ForwardCounter().attach(trainer))

    launcher = in_process(hook, on_reference=scorer.on_reference)
    first = run_training(ctx, tiny_config(beta=0.1, max_steps=4), launcher=launcher)
    assert first.status == "done" and scorer.counts[0] > 0
    second = run_training(ctx, tiny_config(beta=0.5, max_steps=4), launcher=launcher)
    assert second.status == "done"
    assert scorer.counts[1] == 0 and second.summary["ref_hits"] == 32 and second.summary["ref_computed"] == 0
    for counter in counters:
        assert counter.reference == 0  # training and validation ran on cached reference log-probs only
        assert counter.kl_reference == 2  # KL estimates at steps 2 and 4, counted apart
        assert counter.policy > 0
    margins = [r.summary["final"]["train_margin"] for r in (first, second)]
    assert margins[0] != pytest.approx(margins[1])


def test_cancel_mid_run_leaves_the_database_consistent(ctx):
    before = labels(ctx)
    steps = []

    def progress(p):
        if p.phase == "training":
            steps.append(p.step)

    result = run_training(
        ctx,
        tiny_config(max_steps=5000, eval_steps=1000, kl_every=0),
        progress=progress,
        should_stop=lambda: bool(steps) and steps[-1] >= 2,
    )
    assert result.status == "cancelled"
    run = ctx.store.get_run(result.run_id)
    assert run.status == "cancelled" and run.ended_at is not None and run.adapter_path is None
    assert 2 <= RunDir(result.run_dir).read_status()["step"] < 5000
    assert RunDir(result.run_dir).read_status()["state"] == "cancelled"
    assert not RunDir(result.run_dir).adapter.exists()
    assert [m.name for m in ctx.store.list_models()] == ["base", "sft"]
    assert labels(ctx) == before and len(ctx.store.preference_triples()) == 16
    assert ctx.store.count_ref_logps() == 32  # reference log-probs are kept for the next run


def test_killed_worker_marks_the_run_failed_with_its_log(ctx):
    before = labels(ctx)
    killed = []

    def progress(p):
        if p.phase == "training" and p.step >= 1 and not killed:
            pid = RunDir(p.run_dir).read_status()["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    result = run_training(ctx, tiny_config(max_steps=5000, eval_steps=1000, kl_every=0), progress=progress)
    assert killed and result.status == "failed"
    run = ctx.store.get_run(result.run_id)
    assert run.status == "failed" and "killed by SIGKILL" in run.error
    assert str(RunDir(result.run_dir).log_path) in run.error
    assert [m.name for m in ctx.store.list_models()] == ["base", "sft"] and labels(ctx) == before


def test_too_small_or_empty_datasets_are_refused_before_anything_starts(tmp_path, tiny_sft):  # noqa: F811
    ctx = make_ctx(tmp_path / "home", tiny_sft, n_triples=3)
    with pytest.raises(UserInputError) as info:
        run_training(ctx, tiny_config())
    assert (
        str(info.value)
        == "need at least 12 confirmed preference triples, have 3; label more pairs in Annotate"
    )
    empty = make_ctx(tmp_path / "empty", tiny_sft)
    with pytest.raises(UserInputError, match=r"^need at least 12 confirmed preference triples, have 0;"):
        start_training(empty, tiny_config())
    assert ctx.store.list_runs() == [] and empty.store.list_runs() == []
    assert list(ctx.cfg.paths.runs.iterdir()) == []
    with pytest.raises(UserInputError, match="no variant named 'sft2'"):
        run_training(ctx, tiny_config(variant="sft2"))


def test_start_training_runs_as_a_background_job_that_can_be_cancelled(ctx):
    run_id = start_training(
        ctx, tiny_config(max_steps=5000, eval_steps=1000, kl_every=0), launcher=in_process()
    )
    job = ctx.store.latest_job("train")
    assert job.params["run_id"] == run_id
    rd = RunDir(ctx.cfg.paths.runs / str(run_id))
    import time

    deadline = time.monotonic() + 120
    while rd.read_status().get("step", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cancel_training(ctx, run_id) is True
    ctx.jobs.wait(job.id, timeout=120)
    assert ctx.store.get_run(run_id).status == "cancelled"
    assert ctx.store.get_job(job.id).status == "cancelled"
    assert cancel_training(ctx, run_id) is False


def test_an_old_folder_with_the_same_run_id_is_moved_aside(ctx):
    from train.service import prepare_run, run_dir_for

    old = run_dir_for(ctx, 1)
    old.mkdir(parents=True)
    (old / "metrics.jsonl").write_text('{"step": 1, "split": "train", "name": "loss", "value": 9}\n')
    prepared = prepare_run(ctx, tiny_config())
    assert prepared.run_id == 1 and list(prepared.run_dir.path.iterdir()) == []
    assert [p.name.startswith("1.stale-") for p in ctx.cfg.paths.runs.iterdir() if p.name != "1"] == [True]


def test_run_rows_and_metrics_queries(ctx):
    sft = ctx.store.get_model("sft")
    first = ctx.store.create_run(
        "dpo", {"beta": 0.1}, dataset_hash="h1", model_id=sft.id, ref_model_id=sft.id
    )
    second = ctx.store.create_run("sft", {}, dataset_hash=None, model_id=None, ref_model_id=None)
    assert [r.id for r in ctx.store.list_runs()] == [
        first.id,
        second.id,
    ]  # oldest first, like the other lists
    assert [r.id for r in ctx.store.list_runs(kind="dpo", statuses=["queued"])] == [first.id]
    # A repeated (step, split, name) keeps the last value, in one statement.
    rows = [
        (1, "train", "loss", 0.7),
        (1, "eval", "loss", 0.8),
        (1, "train", "loss", 0.6),
        (2, "train", "kl", None),
    ]
    assert ctx.store.add_run_metrics(first.id, rows) == 3
    frame = ctx.store.run_metrics_frame([first.id])
    assert frame[(frame["split"] == "train") & (frame["name"] == "loss")]["value"].tolist() == [0.6]
    done = ctx.store.update_run(first.id, status="done", result={"steps": 2}, error=None)
    assert done.finished and done.result == {"steps": 2} and done.ended_at is not None


class FinishedWorker:
    """A worker that already trained: status 'done' and an adapter folder, as the real one leaves them."""

    pid = os.getpid()
    returncode = 0

    def __init__(self, run_dir, on_start=None):
        rd = RunDir(run_dir)
        rd.adapter.mkdir()
        (rd.adapter / "adapter_config.json").write_text("{}")
        rd.write_json("status.json", {"state": "done", "step": 6, "total": 6})
        if on_start is not None:
            on_start()

    def poll(self):
        return 0

    def wait(self, timeout=None):
        return 0


class FailOnce:
    """Stands in for this thread's cursor: the next statement containing `match` raises (a kill at that point)."""

    def __init__(self, real, match: str):
        self.real, self.match, self.armed = real, match, True

    def execute(self, sql, *args):
        if self.armed and self.match in sql:
            self.armed = False
            raise RuntimeError("killed between registering the variant and marking the run done")
        return self.real.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_the_dpo_variant_and_the_run_done_are_stored_together_or_not_at_all(ctx, monkeypatch):
    store = ctx.store

    def fail_the_run_update():
        failing = FailOnce(store.cursor(), "UPDATE runs")  # the run row's final update, after the worker
        monkeypatch.setattr(store, "cursor", lambda: failing)

    with pytest.raises(RuntimeError, match="killed between"):
        run_training(ctx, tiny_config(), launcher=lambda rd: FinishedWorker(rd, fail_the_run_update))
    monkeypatch.undo()
    (run,) = store.list_runs(kind="dpo")
    assert store.get_model(f"sft+dpo@{run.id}") is None, "a variant whose run is not done"
    assert run.status == "failed" and "killed between" in run.error
    # Without the failure the same ending registers the variant and marks the run done.
    result = run_training(ctx, tiny_config(), launcher=FinishedWorker)
    assert result.status == "done" and store.get_run(result.run_id).status == "done"
    assert store.get_model(f"sft+dpo@{result.run_id}").kind == "dpo"
