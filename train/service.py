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
from train.rundir import (
    CANCEL,
    CONFIG,
    METRICS,
    REFERENCE,
    REPORT,
    TRAIN,
    TRAINER_DIR,
    VAL,
    MetricsTail,
    RunDir,
)

log = logging.getLogger(__name__)

__all__ = [
    "PreparedRun",
    "TrainProgress",
    "TrainResult",
    "cancel_training",
    "execute_run",
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
    resumed: bool = False


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
    return _start_job(ctx, prepare_run(ctx, cfg), launcher)


def _start_job(ctx, prepared: PreparedRun, launcher: Launcher | None) -> int:
    """Run a prepared (new or resumed) run as a background `train` job; returns its run id."""

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
        params = {"run_id": prepared.run_id, "variant": prepared.cfg.variant}
        ctx.jobs.start("train", {**params, "resume": True} if prepared.resumed else params, body)
    except PrefLabError as exc:
        ctx.store.update_run(prepared.run_id, status="failed", error=str(exc))
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


def prepare_resume(ctx, run_id: int) -> PreparedRun:
    """The run's folder, snapshot and settings, with the checkpoint the worker continues from."""
    from models.local import Variant
    from train.config import config_from_overrides
    from train.snapshot import Snapshot
    from train.worker import read_rows

    run = ctx.store.get_run(run_id)
    if run is None or run.kind != "dpo":
        raise UserInputError(f"no DPO run #{run_id}")
    if run.status == "done":
        raise UserInputError(
            f"run #{run_id} is done (its adapter is registered); start a new run to train more"
        )
    if not run.finished:
        raise UserInputError(f"run #{run_id} is still {run.status}; cancel it first")
    rd = RunDir(run_dir_for(ctx, run_id))
    spec = rd.read_json(CONFIG)
    if not isinstance(spec, dict) or not (rd / TRAIN).is_file():
        raise UserInputError(f"run #{run_id} has no run folder to resume from ({rd.path})")
    checkpoint = last_checkpoint(rd / TRAINER_DIR)
    if checkpoint is None:
        raise UserInputError(
            f"run #{run_id} has no checkpoint to resume from (it stopped before its first save; "
            "checkpoints are saved every save_steps)"
        )
    cfg = config_from_overrides(spec["config"])
    variant = Variant(**spec["variant"])
    info = spec.get("snapshot") or {}
    snapshot = Snapshot(
        read_rows(rd / TRAIN),
        read_rows(rd / VAL),
        run.dataset_hash or info.get("dataset_hash", ""),
        dict(info.get("sources") or {}),
        dict(info.get("dropped") or {}),
    )
    rd.write_json(CONFIG, {**spec, "resume_from": str(checkpoint)})
    (rd / CANCEL).unlink(missing_ok=True)  # the cancel that stopped it must not stop the resumed worker
    log.info("run #%d: resuming from %s", run_id, checkpoint)
    return PreparedRun(run_id, rd, cfg, variant, variant, snapshot, resumed=True)


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete Trainer checkpoint (trainer_state.json is written last) under `folder`."""
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else []:
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(suffix), path))
    return max(found)[1] if found else None


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
        if prepared.resumed:
            _refresh_candidates(ctx, prepared, progress, stop)
        else:
            _write_snapshot(ctx, prepared, progress, stop)
        result = _run_worker(ctx, prepared, progress, stop, launcher or _launcher(prepared.cfg), started)
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


def _write_snapshot(ctx, prepared: PreparedRun, progress, stop) -> None:
    """Make the model local, then write config.json, the Parquet snapshot and the cached reference log-probs.

    The worker scores the cache misses itself, on the training devices; this process loads no model.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from models.fetch import ensure_local
    from train.config import config_overrides
    from train.refcache import CANDIDATES, write_candidates

    cfg, rd, snap = prepared.cfg, prepared.run_dir, prepared.snapshot
    _emit(progress, prepared, "loading", 0, 1)
    variant = prepared.variant
    # With the user's Hub token, here: the worker runs offline and without secrets.
    ensure_local(variant, cache_dir=ctx.cfg.paths.models)
    if stop():
        raise InterruptedError("cancelled before training started")
    rows = snap.train + snap.val
    found = write_candidates(
        ctx.store, rows, rd / CANDIDATES, max_length=cfg.max_length, truncation_mode=cfg.truncation_mode
    )
    log.info("run #%d: %d cached reference log-probs for the worker", prepared.run_id, found)
    for name, part in ((TRAIN, snap.train), (VAL, snap.val)):
        pq.write_table(pa.Table.from_pylist(part), rd / name)
    device = _training_device(ctx, cfg)
    dtype = _worker_dtype(ctx, device)
    rd.write_json(
        CONFIG,
        {
            "version": 1,
            "run_id": prepared.run_id,
            "variant": {"name": variant.name, "base": variant.base, "adapters": list(variant.adapters)},
            "models_dir": str(ctx.cfg.paths.models),
            "dtype": dtype,
            "device": device,
            "config": {**config_overrides(cfg), **_device_settings(cfg, device, dtype)},
            "kl_prompts": _kl_prompts(ctx.store, snap, cfg.kl_prompts),
            "snapshot": snap.summary(),
        },
    )


def _refresh_candidates(ctx, prepared: PreparedRun, progress, stop) -> None:
    """A resumed run: the model made local again and the cache's values now (what the first attempt scored)."""
    from models.fetch import ensure_local
    from train.refcache import CANDIDATES, write_candidates

    cfg, rd, snap = prepared.cfg, prepared.run_dir, prepared.snapshot
    _emit(progress, prepared, "loading", 0, 1)
    ensure_local(prepared.variant, cache_dir=ctx.cfg.paths.models)
    if stop():
        raise InterruptedError("cancelled before training started")
    rows = snap.train + snap.val
    write_candidates(
        ctx.store, rows, rd / CANDIDATES, max_length=cfg.max_length, truncation_mode=cfg.truncation_mode
    )


def _run_worker(ctx, prepared: PreparedRun, progress, stop, launcher, started) -> TrainResult:
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
            _emit(progress, prepared, phase, step, int(status.get("total") or 0), latest)

    # The worker loads its own copy of the model: the serving pool's models leave its device first.
    _release_device(ctx, rd)
    ended = supervise(launcher(rd.path), rd, on_poll=on_poll, stop=stop)
    status = rd.read_status()
    summary = {"kl_ref_forwards": status.get("kl_ref_forwards"), "exit_code": ended.code}
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
    summary = {**_reference_summary(ctx, rd), **summary}
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


def _training_device(ctx, cfg) -> str:
    """The worker's concrete device: the config's `device`, else where this process runs its models."""
    from models.devices import resolve_device

    wanted = getattr(cfg, "model_device", "auto")
    return resolve_device(wanted if wanted != "auto" else getattr(ctx.cfg, "device", "auto"))


def _device_settings(cfg, device: str, dtype) -> dict[str, Any]:
    """Trainer settings that follow the device: the CPU or not, and mixed precision matching half weights."""
    settings: dict[str, Any] = {"model_device": device, "use_cpu": device == "cpu"}
    name = str(dtype).removeprefix("torch.")
    if device != "cpu" and not (cfg.bf16 or cfg.fp16):
        settings.update(bf16=name == "bfloat16", fp16=name == "float16")
    return settings


def _release_device(ctx, rd: RunDir) -> None:
    """Unload the pool's models from the accelerator the worker is about to train on (the CPU keeps them)."""
    device = (rd.read_json(CONFIG) or {}).get("device") or "cpu"
    release = getattr(ctx.generator, "release_device", None)
    if device != "cpu" and callable(release):
        release(device)


def _worker_dtype(ctx, device: str) -> str:
    """The dtype the worker loads the variant in: the pool's for that device (what generation and scoring use)."""
    from models.devices import resolve_dtype

    placement = getattr(ctx.generator, "placement", None)
    if placement is not None and placement.device == device:
        return placement.dtype
    return resolve_dtype(getattr(ctx.cfg, "dtype", None) or "auto", device)


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
