"""The worker process: failures end in status.json and worker.log, and `accelerate launch` runs it too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.dpo_fixtures import make_ctx, tiny_config, tiny_sft  # noqa: F401
from train.rundir import RunDir
from train.service import prepare_run, run_training, spawn_worker, worker_command
from train.worker import run_worker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ctx(tmp_path, tiny_sft):  # noqa: F811
    context = make_ctx(tmp_path / "home", tiny_sft, n_triples=16)
    yield context
    context.store.close()


def test_worker_without_a_run_folder_says_so_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "train.worker", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'} is not a PrefLab run folder (no config.json)"
    ]


def test_a_failing_worker_leaves_one_line_in_status_and_the_traceback_in_its_log(ctx, tmp_path):
    prepared = prepare_run(ctx, tiny_config())
    rd = prepared.run_dir
    rd.write_json(
        "config.json",
        {
            "version": 1,
            "config": {},
            "variant": {"name": "sft", "base": str(tmp_path / "gone")},
            "models_dir": str(tmp_path),
        },
    )
    status = run_worker(rd.path)
    assert status["state"] == "failed" and "base model path does not exist" in status["error"]
    assert rd.read_status()["error"] == status["error"] and "\n" not in status["error"]
    assert "Traceback (most recent call last)" in rd.log_path.read_text()


def test_accelerate_launch_with_one_cpu_process(ctx):
    def launch(run_dir):
        return spawn_worker(run_dir, worker_command(run_dir, accelerate_processes=1, cpu=True))

    result = run_training(ctx, tiny_config(max_steps=2, eval_steps=1, kl_every=2), launcher=launch)
    assert result.status == "done", result.error
    rd = RunDir(result.run_dir)
    assert "accelerate" in " ".join(worker_command(rd.path, accelerate_processes=1))
    assert (rd.adapter / "adapter_config.json").is_file()
    assert json.loads((rd / "status.json").read_text())["state"] == "done"
    assert ctx.store.get_model(f"sft+dpo@{result.run_id}") is not None
    names = set(ctx.store.run_metrics_frame([result.run_id])["name"])
    assert {"loss", "rewards/margins", "kl"} <= names


def test_a_worker_whose_parent_died_stops_after_its_step(ctx, monkeypatch):
    from tests.train.dpo_fixtures import in_process
    from train.process import PARENT_ENV

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    monkeypatch.setenv(PARENT_ENV, str(gone.pid))  # as if the service that spawned the worker had been killed
    cfg = tiny_config(max_steps=5000, eval_steps=1000, kl_every=0)
    result = run_training(ctx, cfg, launcher=in_process())
    assert result.status == "cancelled"
    assert RunDir(result.run_dir).read_status()["step"] == 0  # stopped after the reference pass's chunk
    # That chunk was stored when the run ended: with nothing left to score, the next stops after its first step.
    again = run_training(ctx, tiny_config(max_steps=5000, eval_steps=1000, kl_every=0), launcher=in_process())
    assert again.status == "cancelled" and again.summary["ref_computed"] == 0
    assert RunDir(again.run_dir).read_status()["step"] == 1
