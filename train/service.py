"""DPO runs: snapshot the triples into a run folder, fill cached reference log-probs, run the worker, ingest.

The serving process (or the CLI) owns the database; the worker subprocess only reads and writes its run folder
(DESIGN.md, "Processes and the database lock"). Labels are only ever read here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from access import Role
from errors import PrefLabError, UserInputError
from train.process import exit_reason, launcher_for, spawn_worker, supervise, worker_command
from train.rundir import CONFIG, METRICS, REPORT, TRAIN, VAL, MetricsTail, RunDir

log = logging.getLogger(__name__)

__all__ = [
    "PreparedRun",
    "TrainProgress",
    "TrainResult",
    "cancel_training",
    "execute_run",
    "prepare_run",
    "run_dir_for",
    "run_training",
    "spawn_worker",
    "start_training",
    "worker_command",
]


@dataclass
class TrainProgress:
    """What a progress callback sees: phase, step of total, and the latest value of each metric."""

    run_id: int
    run_dir: Path
    phase: str  # loading, reference, training
    step: int
    total: int
    latest: dict[str, float] = field(default_factory=dict)


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
        if self.status != "done":
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


@dataclass
class PreparedRun:
    """A run row and folder with its snapshot, before reference log-probs and the worker."""

    run_id: int
    run_dir: RunDir
    cfg: Any
    variant: Any
    sft_model: Any
    snapshot: Any


Progress = Callable[[TrainProgress], None]
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
    prepared = prepare_run(ctx, cfg)

    def body(handle) -> dict:
        def report(p: TrainProgress) -> None:
            handle.progress(p.step, p.total)

        result = execute_run(
            ctx, prepared, progress=report, should_stop=lambda: handle.cancelled, launcher=launcher
        )
        if result.status == "failed":
            raise PrefLabError(f"run #{result.run_id} failed: {result.error}")  # the job shows the reason
        if result.status == "cancelled":
            handle.cancel_event.set()  # the job ends "cancelled" too, whoever asked (tab, file, Ctrl-C)
        return result.to_dict()

    try:
        ctx.jobs.start("train", {"run_id": prepared.run_id, "variant": cfg.variant}, body)
    except PrefLabError as exc:
        ctx.store.update_run(prepared.run_id, status="failed", error=str(exc))
        raise
    return prepared.run_id


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


def run_dir_for(ctx, run_id: int) -> Path:
    """$PREFLAB_HOME/runs/<run_id>."""
    return ctx.cfg.paths.runs / str(run_id)


def prepare_run(ctx, cfg) -> PreparedRun:
    """Check the variant and the data, then create the run row and its folder."""
    from context import variant_resolver
    from train.config import config_to_dict, set_auto_eval_steps
    from train.snapshot import build_snapshot

    variant = variant_resolver(ctx.store)(cfg.variant)
    sft_model = ctx.store.get_model(cfg.variant)
    snapshot = build_snapshot(ctx.store.preference_triples(), cfg)
    set_auto_eval_steps(cfg, len(snapshot.train), cfg.processes)
    run = ctx.store.create_run(
        "dpo",
        config_to_dict(cfg),
        dataset_hash=snapshot.dataset_hash,
        model_id=sft_model.id,
        ref_model_id=sft_model.id,
    )
    rd = RunDir(run_dir_for(ctx, run.id))
    if rd.path.exists():
        # Left by a database that was replaced: keep it, but never mix its files into this run.
        stale = rd.path.with_name(f"{rd.path.name}.stale-{int(time.time())}")
        log.warning("run folder %s already exists; moving it to %s", rd.path, stale)
        rd.path.rename(stale)
    rd.path.mkdir(parents=True)
    log.info(
        "run #%d: %d train + %d validation triples in %s",
        run.id,
        len(snapshot.train),
        len(snapshot.val),
        rd.path,
    )
    return PreparedRun(run.id, rd, cfg, variant, sft_model, snapshot)


def execute_run(
    ctx, prepared: PreparedRun, *, progress: Progress | None = None, should_stop=None, launcher=None
) -> TrainResult:
    """Reference log-probs, snapshot files, worker, ingestion; the run row always ends in a final status."""
    store, rd, run_id = ctx.store, prepared.run_dir, prepared.run_id
    stop = _stop_check(rd, should_stop)
    store.update_run(run_id, status="running")
    started = time.perf_counter()
    try:
        fill = _write_snapshot(ctx, prepared, progress, stop)
        result = _run_worker(
            ctx, prepared, fill, progress, stop, launcher or _launcher(prepared.cfg), started
        )
    except InterruptedError:
        return _finish(ctx, prepared, "cancelled", "cancelled before training started", {}, started)
    except KeyboardInterrupt:
        _finish(ctx, prepared, "cancelled", "interrupted (Ctrl-C)", {}, started)
        raise
    except BaseException as exc:
        error = str(exc) if isinstance(exc, PrefLabError) else f"{type(exc).__name__}: {exc}"
        _finish(ctx, prepared, "failed", " ".join(error.split())[:400], {}, started)
        raise
    return result


def _launcher(cfg) -> Launcher:
    """The plain worker, or several processes: torchrun on the CPU, `accelerate launch` on GPUs."""
    return launcher_for(cfg)


def _write_snapshot(ctx, prepared: PreparedRun, progress, stop):
    """Fill the reference log-probs (cache first) and write config.json and the Parquet snapshot."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from train.config import config_overrides
    from train.refcache import fill_ref_logps

    cfg, rd, snap = prepared.cfg, prepared.run_dir, prepared.snapshot
    _emit(progress, prepared, "loading", 0, 1)
    model = _reference_model(ctx, prepared.variant)
    rows = snap.train + snap.val
    fill = fill_ref_logps(
        ctx.store,
        model,
        rows,
        max_length=cfg.max_length,
        truncation_mode=cfg.truncation_mode,
        batch_size=cfg.precompute_ref_batch_size or 8,
        progress=lambda done, total: _emit(progress, prepared, "reference", done, total),
        should_stop=stop,
    )
    for name, part in ((TRAIN, snap.train), (VAL, snap.val)):
        pq.write_table(pa.Table.from_pylist(part), rd / name)
    variant = prepared.variant
    rd.write_json(
        CONFIG,
        {
            "version": 1,
            "run_id": prepared.run_id,
            "variant": {"name": variant.name, "base": variant.base, "adapters": list(variant.adapters)},
            "models_dir": str(ctx.cfg.paths.models),
            "dtype": str(model.model.dtype).removeprefix("torch."),
            "ref_fingerprint": fill.key.model_fingerprint,
            "config": config_overrides(cfg),
            "kl_prompts": _kl_prompts(ctx.store, snap, cfg.kl_prompts),
            "snapshot": snap.summary(),
        },
    )
    return fill


def _run_worker(ctx, prepared: PreparedRun, fill, progress, stop, launcher, started) -> TrainResult:
    """Start the worker, stream its metrics into run_metrics, and ingest how it ended."""
    store, rd, run_id = ctx.store, prepared.run_dir, prepared.run_id
    tail = MetricsTail(rd / METRICS)
    latest: dict[str, float] = {}
    last_step = [-1]

    def on_poll() -> None:
        new = _ingest_metrics(store, run_id, tail, latest)
        status = rd.read_status()
        step = int(status.get("step") or 0)
        if new or step != last_step[0]:
            last_step[0] = step
            _emit(progress, prepared, "training", step, int(status.get("total") or 0), latest)

    ended = supervise(launcher(rd.path), rd, on_poll=on_poll, stop=stop)
    status = rd.read_status()
    summary = {**fill.to_dict(), "kl_ref_forwards": status.get("kl_ref_forwards"), "exit_code": ended.code}
    if status.get("train_seconds") is not None:
        summary["train_seconds"] = status["train_seconds"]
    state = status.get("state")
    if state == "done" and ended.code == 0 and rd.adapter.is_dir():
        return _finish(ctx, prepared, "done", None, summary, started)
    if state == "cancelled" or (ended.cancel_requested and state != "failed"):
        return _finish(ctx, prepared, "cancelled", "cancelled by the user", summary, started)
    error = status.get("error") if state == "failed" else None
    if error is None:
        error = exit_reason(ended.code) + (f" during step {status.get('step')}" if status.get("step") else "")
    return _finish(ctx, prepared, "failed", f"{error} (log: {rd.log_path})", summary, started)


def _finish(ctx, prepared: PreparedRun, status: str, error, summary: dict, started: float) -> TrainResult:
    """Register the adapter (when done), write the report, and store the run's final row."""
    from train.health import final_metrics, training_warnings, write_report

    store, rd, run_id, snap, cfg = (
        ctx.store,
        prepared.run_dir,
        prepared.run_id,
        prepared.snapshot,
        prepared.cfg,
    )
    frame = store.run_metrics_frame([run_id])
    warnings = training_warnings(frame)
    steps = _last_step(frame)
    model_name = f"{cfg.variant}+dpo@{run_id}" if status == "done" else None
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
        adapter_path=str(rd.adapter) if status == "done" else None,
        result=summary,
        register=(model_name, sft.base, [*sft.adapters, str(rd.adapter)], "dpo") if model_name else None,
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


def _reference_model(ctx, variant):
    """The SFT variant's LocalModel: the process's pool copy when there is one."""
    if ctx.generator is not None:
        return ctx.generator.get(variant.name)
    from models.local import load_variant

    return load_variant(variant, cache_dir=ctx.cfg.paths.models)


def _kl_prompts(store, snap, n: int) -> list[list[dict]]:
    """Held-out prompts for the KL estimate; validation prompts when none are held out."""
    from train.snapshot import canonical_messages

    prompts = [canonical_messages(p.messages) for p in store.list_prompts(split="heldout", limit=n)]
    for row in snap.val:
        if len(prompts) >= n:
            break
        if row["prompt"] not in prompts:
            prompts.append(row["prompt"])
    return prompts[:n]


def _stop_check(rd: RunDir, should_stop) -> Callable[[], bool]:
    def stop() -> bool:
        return rd.cancel_requested() or bool(should_stop and should_stop())

    return stop


def _emit(progress, prepared: PreparedRun, phase: str, step: int, total: int, latest=None) -> None:
    if progress is not None:
        progress(
            TrainProgress(prepared.run_id, prepared.run_dir.path, phase, step, total, dict(latest or {}))
        )


def _last_step(frame) -> int:
    rows = frame[frame["split"] == "train"]
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
