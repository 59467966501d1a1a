"""What the Train tab shows, as data: the runs, the latest DPO runs' metrics, and the newest run's progress, warnings,
report and curves. The tab renders these and never reads the store or a run folder itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.vocab import JobKind, JobStatus, RunKind
from train.run_prepare import run_dir_for
from train.rundir import REFERENCE, REPORT, RunDir

# The metrics of this many newest DPO runs overlay on the tab's plots.
OVERLAID_RUNS = 4
CURVES_PNG = "curves.png"


@dataclass(frozen=True)
class LatestRun:
    """The newest DPO run and what its folder holds."""

    run: Any  # its `runs` row
    progress: str  # " · step 3/40", " · waiting for the device", or "" when no train job is active
    reference: dict | None  # the worker's reference.json (pairs truncated, ...), None before it wrote one
    warnings: list[str]  # training health warnings from its metrics
    report: str  # report.md once the run finished, else ""
    curves: Path | None  # a served copy of curves.png next to a finished report


@dataclass(frozen=True)
class TrainOverview:
    """Everything the Train tab draws on a refresh."""

    counts: dict[str, int]
    has_sft: bool
    runs: list = field(default_factory=list)  # every run, newest first
    metrics: Any = None  # DataFrame (run_id, step, split, name, value) of the newest DPO runs
    latest: LatestRun | None = None


def dpo_runs(ctx) -> list:
    """The DPO runs, oldest first."""
    return [r for r in ctx.store.list_runs() if r.kind == RunKind.DPO]


def train_overview(ctx) -> TrainOverview:
    """The runs, the newest DPO runs' metrics and the latest run's state, read once for one refresh."""
    import pandas as pd

    store = ctx.store
    all_runs = store.list_runs()
    dpo = [r for r in all_runs if r.kind == RunKind.DPO]
    frame = store.run_metrics_frame([r.id for r in dpo[-OVERLAID_RUNS:]]) if dpo else pd.DataFrame()
    return TrainOverview(
        counts=store.counts(),
        has_sft=store.get_model("sft") is not None,
        runs=all_runs[::-1],
        metrics=frame,
        latest=_latest(ctx, dpo[-1], frame) if dpo else None,
    )


def _latest(ctx, run, frame) -> LatestRun:
    from train.health import training_warnings
    from webui.served import chart_copy

    job = ctx.store.latest_job(JobKind.TRAIN)
    progress = ""
    if job is not None and job.status == JobStatus.QUEUED:
        progress = " · waiting for the device"
    elif job is not None and job.active:
        progress = f" · step {job.progress}/{job.total or '?'}"
    rd = RunDir(run_dir_for(ctx, run.id))
    mine = frame[frame["run_id"] == run.id] if not frame.empty else frame
    found = training_warnings(mine) if not mine.empty else []
    report_path, png = rd / REPORT, rd / CURVES_PNG
    report = report_path.read_text() if run.finished and report_path.is_file() else ""
    # A copy in the served folder: nothing under the home is served (run folders hold adapters).
    curves = chart_copy(ctx.cfg.paths, png, f"run-{run.id}-curves.png") if report and png.is_file() else None
    return LatestRun(run, progress, rd.read_json(REFERENCE), [w.message for w in found], report, curves)


def sft_job_text(ctx, job_id: int) -> str | None:
    """The demo SFT job's line under its button: waiting, step N/M, or how it ended; None for an unknown job."""
    from annotate.jobs import job_line

    job = ctx.store.get_job(job_id)
    if job is None:
        return None
    if job.status == JobStatus.QUEUED:
        return job_line(job, ctx.jobs)
    if job.active:
        return f"SFT: step {job.progress}/{job.total or '?'} (job #{job.id})"
    return f"SFT job #{job.id} {job.status}" + (f": {job.error}" if job.error else "")
