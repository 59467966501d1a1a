"""DPO runs: snapshot the triples into a run folder, fill cached reference log-probs, run the worker, ingest.

The serving process (or the CLI) owns the database; the worker subprocess only reads and writes its run folder
(DESIGN.md, "Processes and the database lock"). Labels are only ever read here.

One path for the `train` command and the Train tab: `dpo_config` builds the settings, `run_training` /
`start_training` (and the resume pair) run them. The steps live in train/run_prepare.py (row, folder, snapshot,
config.json) and train/run_finish.py (worker, metrics, adapter, report); the tab's views in train/runs_view.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.access import Role
from common.errors import PrefLabError, UserInputError
from common.vocab import JobKind, JobStatus
from train.process import launcher_for, spawn_worker, worker_command
from train.run_finish import TrainResult, finish, run_worker
from train.run_prepare import (
    PreparedRun,
    Progress,
    TrainProgress,
    dpo_config,
    judge_sources,
    prepare_resume,
    prepare_run,
    refresh_candidates,
    run_dir_for,
    write_snapshot,
)
from train.rundir import RunDir

log = logging.getLogger(__name__)

__all__ = [
    "PreparedRun",
    "TrainProgress",
    "TrainResult",
    "cancel_training",
    "dpo_config",
    "execute_run",
    "judge_sources",
    "prepare_resume",
    "prepare_run",
    "resume_training",
    "run_dir_for",
    "run_training",
    "spawn_worker",
    "start_resume",
    "start_training",
    "worker_command",
]

Launcher = Callable[[Path], Any]


def run_training(
    ctx, cfg, *, progress: Progress | None = None, should_stop=None, launcher: Launcher | None = None
) -> TrainResult:
    """Snapshot, score the missing reference log-probs, train in a worker subprocess, ingest; blocks until done."""
    return execute_run(
        ctx, prepare_run(ctx, cfg), progress=progress, should_stop=should_stop, launcher=launcher
    )


def start_training(ctx, cfg, *, user: str | None = None, launcher: Launcher | None = None) -> int:
    """Validate and snapshot now (errors raise here), then train as a background `train` job; returns the run id."""
    ctx.access.require(user, Role.ADMIN)
    return _start_job(ctx, prepare_run(ctx, cfg), launcher)


def _start_job(ctx, prepared: PreparedRun, launcher: Launcher | None) -> int:
    """Run a prepared (new or resumed) run as a background `train` job; returns its run id."""

    def body(handle) -> dict:
        def report(p: TrainProgress) -> None:
            handle.progress(p.step, p.total)

        result = execute_run(
            ctx, prepared, progress=report, should_stop=lambda: handle.cancelled, launcher=launcher
        )
        if result.status == JobStatus.FAILED:
            raise PrefLabError(f"run #{result.run_id} failed: {result.error}")  # the job shows the reason
        if result.status == JobStatus.CANCELLED:
            handle.cancel_event.set()  # the job ends "cancelled" too, whoever asked (tab, file, Ctrl-C)
        return result.to_dict()

    try:
        params = {"run_id": prepared.run_id, "variant": prepared.cfg.variant}
        ctx.jobs.start(JobKind.TRAIN, {**params, "resume": True} if prepared.resumed else params, body)
    except PrefLabError as exc:
        ctx.store.update_run(prepared.run_id, status=JobStatus.FAILED.value, error=str(exc))
        raise
    return prepared.run_id


def resume_training(
    ctx, run_id: int, *, progress: Progress | None = None, should_stop=None, launcher: Launcher | None = None
) -> TrainResult:
    """Continue a failed or cancelled run from its last checkpoint, on its own snapshot and settings; blocks."""
    prepared = prepare_resume(ctx, run_id)
    return execute_run(ctx, prepared, progress=progress, should_stop=should_stop, launcher=launcher)


def start_resume(ctx, run_id: int, *, user: str | None = None, launcher: Launcher | None = None) -> int:
    """`resume_training` as a background `train` job (admin); refusals raise before the job exists."""
    ctx.access.require(user, Role.ADMIN)
    prepared = prepare_resume(ctx, run_id)
    return _start_job(ctx, prepared, launcher)


def cancel_training(ctx, run_id: int, *, user: str | None = None) -> bool:
    """Ask a queued or running run to stop; False when it already ended."""
    ctx.access.require(user, Role.ADMIN)
    run = ctx.store.get_run(run_id)
    if run is None:
        raise UserInputError(f"no run #{run_id}")
    if run.finished:
        return False
    RunDir(run_dir_for(ctx, run_id)).request_cancel()
    return True


def execute_run(
    ctx, prepared: PreparedRun, *, progress: Progress | None = None, should_stop=None, launcher=None
) -> TrainResult:
    """Reference log-probs, snapshot files, worker, ingestion; the run row always ends in a final status."""
    store, rd, run_id = ctx.store, prepared.run_dir, prepared.run_id
    stop = _stop_check(rd, should_stop)
    store.update_run(run_id, status=JobStatus.RUNNING.value)
    started = time.perf_counter()
    try:
        if prepared.resumed:
            refresh_candidates(ctx, prepared, progress, stop)
        else:
            write_snapshot(ctx, prepared, progress, stop)
        result = run_worker(ctx, prepared, progress, stop, launcher or _launcher(prepared.cfg), started)
    except InterruptedError:
        return finish(
            ctx, prepared, JobStatus.CANCELLED.value, "cancelled before training started", {}, started
        )
    except KeyboardInterrupt:
        finish(ctx, prepared, JobStatus.CANCELLED.value, "interrupted (Ctrl-C)", {}, started)
        raise
    except BaseException as exc:
        error = str(exc) if isinstance(exc, PrefLabError) else f"{type(exc).__name__}: {exc}"
        finish(ctx, prepared, JobStatus.FAILED.value, " ".join(error.split())[:400], {}, started)
        raise
    return result


def _launcher(cfg) -> Launcher:
    """The plain worker, or several processes: torchrun on the CPU, `accelerate launch` on GPUs."""
    return launcher_for(cfg)


def _stop_check(rd: RunDir, should_stop) -> Callable[[], bool]:
    def stop() -> bool:
        return rd.cancel_requested() or bool(should_stop and should_stop())

    return stop
