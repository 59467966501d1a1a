"""A DPO run from its worker's start to its final row: supervise the worker, stream its metrics into the database,
then register the adapter, write the report and store how the run ended (`finish`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.vocab import JobStatus, MetricSplit, ModelKind
from train.process import exit_reason, supervise
from train.run_prepare import PreparedRun, emit
from train.rundir import CONFIG, METRICS, REFERENCE, REPORT, MetricsTail, RunDir

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """How a run ended and where its outputs are."""

    run_id: int
    status: str
    run_dir: Path
    model_name: str | None = None
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "run_dir": str(self.run_dir),
            "model": self.model_name,
            "error": self.error,
            **self.summary,
        }

    def summary_line(self) -> str:
        """One line for the CLI and the job list."""
        s, final = self.summary, self.summary.get("final", {})
        if self.status != JobStatus.DONE:
            return f"run #{self.run_id} {self.status}" + (f": {self.error}" if self.error else "")
        parts = [f"run #{self.run_id} done: {s.get('steps')} steps on {s.get('train_pairs')} pairs"]
        if "val_accuracy" in final:
            low, high = final.get("val_accuracy_ci", [None, None])
            ci = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
            parts.append(f"val reward accuracy {final['val_accuracy']:.2f}{ci}")
        if "val_margin" in final:
            parts.append(f"val reward gap {final['val_margin']:+.3f}")
        if "kl" in final:
            parts.append(f"KL {final['kl']:.4f}/token")
        return ", ".join(parts) + f" -> {self.model_name} (report {self.run_dir / REPORT})"


def run_worker(ctx, prepared: PreparedRun, progress, stop, launcher, started) -> TrainResult:
    """Start the worker, stream its metrics into run_metrics, and ingest how it ended."""
    store, rd, run_id = ctx.store, prepared.run_dir, prepared.run_id
    tail = MetricsTail(rd / METRICS)
    if prepared.resumed and (rd / METRICS).is_file():
        tail.offset = (rd / METRICS).stat().st_size  # the steps before the checkpoint are stored already
    latest: dict[str, float] = {}
    last = [("", -1)]

    def on_poll() -> None:
        new = _ingest_metrics(store, run_id, tail, latest)
        status = rd.read_status()
        step = int(status.get("step") or 0)
        phase = "reference" if status.get("phase") == "reference" else "training"
        if new or (phase, step) != last[0]:
            last[0] = (phase, step)
            emit(progress, prepared, phase, step, int(status.get("total") or 0), latest)

    # The worker loads its own copy of the model: the serving pool's models leave its device first.
    release_device(ctx, rd)
    ended = supervise(launcher(rd.path), rd, on_poll=on_poll, stop=stop)
    status = rd.read_status()
    summary = {"kl_ref_forwards": status.get("kl_ref_forwards"), "exit_code": ended.code}
    if status.get("train_seconds") is not None:
        summary["train_seconds"] = status["train_seconds"]
    state = status.get("state")
    if state == JobStatus.DONE and ended.code == 0 and rd.adapter.is_dir():
        return finish(ctx, prepared, JobStatus.DONE.value, None, summary, started)
    if state == JobStatus.CANCELLED or (ended.cancel_requested and state != JobStatus.FAILED):
        return finish(ctx, prepared, JobStatus.CANCELLED.value, "cancelled by the user", summary, started)
    error = status.get("error") if state == JobStatus.FAILED else None
    if error is None:
        error = exit_reason(ended.code) + (f" during step {status.get('step')}" if status.get("step") else "")
    return finish(ctx, prepared, JobStatus.FAILED.value, f"{error} (log: {rd.log_path})", summary, started)


def finish(ctx, prepared: PreparedRun, status: str, error, summary: dict, started: float) -> TrainResult:
    """Register the adapter (when done), write the report, and store the run's final row."""
    from train.health import final_metrics, training_warnings, write_report

    store, rd, run_id, snap, cfg = (
        ctx.store,
        prepared.run_dir,
        prepared.run_id,
        prepared.snapshot,
        prepared.cfg,
    )
    summary = {**_reference_summary(ctx, rd), **summary}
    frame = store.run_metrics_frame([run_id])
    warnings = training_warnings(frame)
    steps = _last_step(frame)
    model_name = f"{cfg.variant}+dpo@{run_id}" if status == JobStatus.DONE else None
    train_seconds = summary.get("train_seconds")
    summary = {
        **snap.summary(),
        **summary,
        "variant": cfg.variant,
        "model": model_name,
        "steps": steps,
        "total_steps": _total_steps(rd),
        "seconds": round(time.perf_counter() - started, 3),
        "seconds_per_step": round(train_seconds / steps, 3) if train_seconds and steps else None,
        "final": final_metrics(frame, val_pairs=len(snap.val)),
        "warnings": [w.message for w in warnings],
        "report": str(rd / REPORT),
        "settings": _settings(cfg),
    }
    try:
        write_report(
            rd / REPORT,
            run={**summary, "run_id": run_id, "status": status, "error": error},
            frame=frame,
            warnings=warnings,
        )
    except Exception as exc:  # the run's outcome matters more than its report
        log.warning("run #%d: could not write the report: %s", run_id, exc)
    if model_name:
        _serving_section(ctx, prepared, model_name, summary)
    sft = prepared.sft_model
    # The variant is registered in the same transaction that marks the run done: both or neither.
    store.finish_run(
        run_id,
        status=status,
        error=error,
        adapter_path=str(rd.adapter) if status == JobStatus.DONE else None,
        result=summary,
        register=(model_name, sft.base, [*sft.adapters, str(rd.adapter)], ModelKind.DPO.value)
        if model_name
        else None,
    )
    log.info("run #%d %s%s", run_id, status, f": {error}" if error else "")
    return TrainResult(run_id, status, rd.path, model_name, error, summary, [w.message for w in warnings])


def _serving_section(ctx, prepared: PreparedRun, model_name: str, summary: dict) -> None:
    """The commands that put the new adapter on a vLLM server: in the result (CLI) and the report (Train tab)."""
    from train.export_service import append_serving_to_report, dpo_serving_lines

    rd = prepared.run_dir
    try:
        summary["serving"] = dpo_serving_lines(ctx, model_name, prepared.sft_model, rd.adapter)
        append_serving_to_report(rd / REPORT, summary["serving"])
    except Exception as exc:  # a missing hint must never fail a finished run
        log.warning("run #%d: could not write the serving commands: %s", prepared.run_id, exc)


def _ingest_metrics(store, run_id: int, tail: MetricsTail, latest: dict[str, float]) -> int:
    records = tail.read()
    if records:
        store.add_run_metrics(run_id, [(r["step"], r["split"], r["name"], r["value"]) for r in records])
        for r in records:
            if r["value"] is not None:
                latest[f"{r['split']}/{r['name']}"] = r["value"]
    return len(records)


def release_device(ctx, rd: RunDir) -> None:
    """Unload the pool's models from the accelerator the worker is about to train on (the CPU keeps them)."""
    device = (rd.read_json(CONFIG) or {}).get("device") or "cpu"
    release = getattr(ctx.generator, "release_device", None)
    if device != "cpu" and callable(release):
        release(device)


def _reference_summary(ctx, rd: RunDir) -> dict[str, Any]:
    """Store what the worker scored (whatever the outcome: the values are valid) and read its reference numbers."""
    from train.refcache import ingest_new

    try:
        added = ingest_new(ctx.store, rd.path)
    except Exception as exc:  # the run's outcome matters more; the next run scores them again
        log.warning("%s: could not store the new reference log-probs: %s", rd.path, exc)
        added = 0
    if added:
        log.info("%s: %d new reference log-probs stored in the cache", rd.path, added)
    reference = rd.read_json(REFERENCE)
    return reference if isinstance(reference, dict) else {}


def _last_step(frame) -> int:
    rows = frame[frame["split"] == MetricSplit.TRAIN]
    return int(rows["step"].max()) if len(rows) else 0


def _total_steps(rd: RunDir) -> int | None:
    total = rd.read_status().get("total")
    return int(total) if total else None


def _settings(cfg) -> str:
    loss = ",".join(cfg.loss_type)
    return (
        f"beta {cfg.beta:g}, lr {cfg.learning_rate:g}, epochs {cfg.num_train_epochs:g}, batch "
        f"{cfg.per_device_train_batch_size}x{cfg.gradient_accumulation_steps}, loss {loss}, LoRA r{cfg.lora_r}/"
        f"alpha {cfg.lora_alpha:g}" + (f" on the last {cfg.lora_layers} blocks" if cfg.lora_layers else "")
    )
