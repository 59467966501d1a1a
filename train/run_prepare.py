"""A DPO run before its worker starts: the run row and folder, the snapshot, config.json and the reference cache.

New runs (`prepare_run`, `write_snapshot`) and resumed ones (`prepare_resume`, `refresh_candidates`); the worker's
device and dtype are decided here and written into config.json. train/service.py runs the whole thing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserInputError
from common.vocab import JobStatus, LabelSource, RunKind, Split
from train.rundir import CANCEL, CONFIG, TRAIN, TRAINER_DIR, VAL, RunDir

log = logging.getLogger(__name__)


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


def emit(
    progress: Progress | None, prepared: PreparedRun, phase: str, step: int, total: int, latest=None
) -> None:
    if progress is not None:
        progress(
            TrainProgress(prepared.run_id, prepared.run_dir.path, phase, step, total, dict(latest or {}))
        )


def run_dir_for(ctx, run_id: int) -> Path:
    """$PREFLAB_HOME/runs/<run_id>."""
    return ctx.cfg.paths.runs / str(run_id)


def judge_sources(yaml_path: str | Path | None, preset: str) -> list[str]:
    """The label sources of a run that includes the judge's labels: the YAML file's sources, else the preset's,
    else the default ones, and `judge`."""
    from train.config import PRESETS, PrefLabFields, read_yaml

    sources = read_yaml(yaml_path).get("sources") if yaml_path else None
    if isinstance(sources, str):  # `sources: human,import` in YAML, as a flag would write it
        sources = [s.strip() for s in sources.split(",") if s.strip()]
    base = list(sources or PRESETS[preset].get("sources") or PrefLabFields.sources)
    return [*base, LabelSource.JUDGE.value]


def dpo_config(
    yaml_path: str | Path | None = None,
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
    *,
    include_judge: bool = False,
):
    """A run's PrefLabDPOConfig: overrides (None: not given) over the YAML file over the preset, and with
    `include_judge` the judge's stored labels among its sources. The `train` command and the Train tab both
    build their config here, so the same choices give the same run."""
    from train.config import load_config

    overrides = dict(overrides or {})
    if include_judge:
        overrides["sources"] = judge_sources(yaml_path, preset)
    return load_config(yaml_path, preset, overrides)


def prepare_run(ctx, cfg) -> PreparedRun:
    """Check the variant and the data, then create the run row and its folder."""
    from common.context import variant_resolver
    from train.config import config_to_dict, set_auto_eval_steps
    from train.snapshot import build_snapshot

    variant = variant_resolver(ctx.store)(cfg.variant)
    sft_model = ctx.store.get_model(cfg.variant)
    snapshot = build_snapshot(ctx.store.preference_triples(), cfg)
    set_auto_eval_steps(cfg, len(snapshot.train), cfg.processes)
    run = ctx.store.create_run(
        RunKind.DPO.value,
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


def prepare_resume(ctx, run_id: int) -> PreparedRun:
    """The run's folder, snapshot and settings, with the checkpoint the worker continues from."""
    from models.local import Variant
    from train.config import config_from_overrides
    from train.snapshot import Snapshot
    from train.worker import read_rows

    run = ctx.store.get_run(run_id)
    if run is None or run.kind != RunKind.DPO:
        raise UserInputError(f"no DPO run #{run_id}")
    if run.status == JobStatus.DONE:
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


def write_snapshot(ctx, prepared: PreparedRun, progress, stop) -> None:
    """Make the model local, then write config.json, the Parquet snapshot and the cached reference log-probs.

    The worker scores the cache misses itself, on the training devices; this process loads no model.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from models.fetch import ensure_local
    from train.config import config_overrides
    from train.refcache import CANDIDATES, write_candidates

    cfg, rd, snap = prepared.cfg, prepared.run_dir, prepared.snapshot
    emit(progress, prepared, "loading", 0, 1)
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
    device = training_device(ctx, cfg)
    dtype = worker_dtype(ctx, device)
    rd.write_json(
        CONFIG,
        {
            "version": 1,
            "run_id": prepared.run_id,
            "variant": {"name": variant.name, "base": variant.base, "adapters": list(variant.adapters)},
            "models_dir": str(ctx.cfg.paths.models),
            "dtype": dtype,
            "device": device,
            "config": {**config_overrides(cfg), **device_settings(cfg, device, dtype)},
            "kl_prompts": kl_prompts(ctx.store, snap, cfg.kl_prompts),
            "snapshot": snap.summary(),
        },
    )


def refresh_candidates(ctx, prepared: PreparedRun, progress, stop) -> None:
    """A resumed run: the model made local again and the cache's values now (what the first attempt scored)."""
    from models.fetch import ensure_local
    from train.refcache import CANDIDATES, write_candidates

    cfg, rd, snap = prepared.cfg, prepared.run_dir, prepared.snapshot
    emit(progress, prepared, "loading", 0, 1)
    ensure_local(prepared.variant, cache_dir=ctx.cfg.paths.models)
    if stop():
        raise InterruptedError("cancelled before training started")
    rows = snap.train + snap.val
    write_candidates(
        ctx.store, rows, rd / CANDIDATES, max_length=cfg.max_length, truncation_mode=cfg.truncation_mode
    )


def kl_prompts(store, snap, n: int) -> list[list[dict]]:
    """Held-out prompts for the KL estimate; validation prompts when none are held out."""
    from train.snapshot import canonical_messages

    prompts = [canonical_messages(p.messages) for p in store.list_prompts(split=Split.HELDOUT.value, limit=n)]
    for row in snap.val:
        if len(prompts) >= n:
            break
        if row["prompt"] not in prompts:
            prompts.append(row["prompt"])
    return prompts[:n]


def training_device(ctx, cfg) -> str:
    """The worker's concrete device: the config's `device`, else where this process runs its models."""
    from models.devices import resolve_device

    wanted = getattr(cfg, "model_device", "auto")
    return resolve_device(wanted if wanted != "auto" else getattr(ctx.cfg, "device", "auto"))


def device_settings(cfg, device: str, dtype) -> dict[str, Any]:
    """Trainer settings that follow the device: the CPU or not, and mixed precision matching half weights."""
    settings: dict[str, Any] = {"model_device": device, "use_cpu": device == "cpu"}
    name = str(dtype).removeprefix("torch.")
    if device != "cpu" and not (cfg.bf16 or cfg.fp16):
        settings.update(bf16=name == "bfloat16", fp16=name == "float16")
    return settings


def worker_dtype(ctx, device: str) -> str:
    """The dtype the worker loads the variant in: the pool's for that device (what generation and scoring use)."""
    from models.devices import resolve_dtype

    placement = getattr(ctx.generator, "placement", None)
    if placement is not None and placement.device == device:
        return placement.dtype
    return resolve_dtype(getattr(ctx.cfg, "dtype", None) or "auto", device)
