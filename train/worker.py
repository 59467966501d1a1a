"""The DPO worker: `python -m train.worker RUN_DIR` (or `accelerate launch -m train.worker RUN_DIR`).

It reads RUN_DIR/config.json and the train/val Parquet snapshot (with cached reference log-probs), trains a LoRA
adapter on the SFT variant with CachedRefDPOTrainer, and writes only into RUN_DIR: metrics.jsonl, status.json,
worker.log and, on success, adapter/ (renamed into place when complete). It never opens the database.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import ModelError, PrefLabError
from common.text import exception_line
from train.process import WORKER_DEVICE_ENV
from train.rundir import ADAPTER, CONFIG, REFERENCE, STATUS, TRAIN, TRAINER_DIR, VAL, RunDir

log = logging.getLogger(__name__)

SPEC_VERSION = 1


def main(argv: list[str] | None = None) -> int:
    """Train the run in RUN_DIR; exit 0 when done or cancelled, 1 when it failed, 2 without a run folder."""
    parser = argparse.ArgumentParser(prog="python -m train.worker", description="Train one PrefLab DPO run.")
    parser.add_argument("run_dir", help="run folder written by `launch.py train` (config.json, *.parquet)")
    args = parser.parse_args(argv)
    if not (Path(args.run_dir) / CONFIG).is_file():
        print(f"error: {args.run_dir} is not a PrefLab run folder (no {CONFIG})", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    status = run_worker(args.run_dir)
    return 0 if status.get("state") in ("done", "cancelled") else 1


def run_worker(
    run_dir: str | os.PathLike,
    *,
    on_trainer: Callable[[Any], None] | None = None,
    on_reference: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Train, save the adapter, and return the final status; failures end up in status.json and worker.log.

    `on_reference` sees the loaded model before the reference pass, `on_trainer` the trainer before training.
    """
    rd = RunDir(run_dir)
    main_process = _is_main_process()
    started = time.time()
    try:
        if main_process:
            rd.write_json(STATUS, {"state": "starting", "step": 0, "total": 0, "pid": os.getpid()})
        return _train(rd, on_trainer, started, main_process, on_reference)
    except Exception as exc:  # the run must end "failed" with a reason, whatever broke
        error = exception_line(exc)
        log.error("run failed: %s", error)
        status = {
            "state": "failed",
            "error": error,
            "pid": os.getpid(),
            "seconds": round(time.time() - started, 3),
        }
        if main_process:
            with open(rd.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"\n--- worker traceback (pid {os.getpid()}) ---\n{traceback.format_exc()}\n")
            previous = rd.read_status()
            status.update({k: previous[k] for k in ("step", "total") if k in previous})
            rd.write_json(STATUS, status)
        return status


def _train(rd: RunDir, on_trainer, started: float, main_process: bool, on_reference=None) -> dict[str, Any]:
    spec = rd.read_json(CONFIG)
    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        raise PrefLabError(f"{rd / CONFIG} is missing or not a version {SPEC_VERSION} PrefLab run config")
    from train.config import config_from_overrides

    cfg = config_from_overrides(spec["config"], output_dir=str(rd / TRAINER_DIR))
    cfg.disable_tqdm = True  # a progress bar in worker.log is noise; PrinterCallback logs each row instead
    local = load_reference(
        spec,
        load_in_4bit=cfg.load_in_4bit,
        gradient_checkpointing=bool(cfg.activation_checkpointing),
        sharded=_sharded_weights(),
    )
    if cfg.kl_every and _sharded_weights():
        # The KL estimate samples on one process; ZeRO-3 / FSDP weights are gathered by all of them together.
        log.warning("KL estimates are off: ZeRO-3 / FSDP shard the weights across processes")
        cfg.kl_every = 0
    train_rows, val_rows = read_rows(rd / TRAIN), read_rows(rd / VAL)
    if on_reference is not None:
        on_reference(local)
    try:
        fill_reference(cfg, local, train_rows + val_rows, rd, main_process)
    except InterruptedError:
        status = {"state": "cancelled", "step": 0, "total": 0, "pid": os.getpid(), "adapter": None}
        if main_process:
            rd.write_json(STATUS, status)
        log.info("run cancelled while scoring reference log-probs")
        return status
    trainer, files, kl = build_trainer(
        cfg, local, train_rows, val_rows, rd, kl_prompts=spec.get("kl_prompts") or [], on_trainer=on_trainer
    )
    try:
        # A resumed run continues from the checkpoint the service chose (optimizer, scheduler, data position).
        trainer.train(resume_from_checkpoint=spec.get("resume_from"))
        if not files.cancelled and not _evaluated_last_step(trainer):
            trainer.evaluate()  # the final validation gap (transformers 5 already evaluates at max_steps)
        if files.cancelled:
            state = "cancelled"
        else:
            save_adapter(trainer, rd)
            state = "done"
    finally:
        files.writer.close()
    steps = int(trainer.state.global_step)
    status = {
        "state": state,
        "step": steps,
        "total": files.total,
        "pid": os.getpid(),
        "seconds": round(time.time() - started, 3),
        "train_seconds": _train_seconds(trainer),
        "kl_ref_forwards": kl.ref_forwards if kl else 0,
        "adapter": ADAPTER if state == "done" else None,
        "world_size": int(trainer.accelerator.num_processes),
    }
    if main_process:
        rd.write_json(STATUS, status)
    log.info("run %s after %d steps", state, steps)
    return status


def load_reference(
    spec: dict[str, Any], *, load_in_4bit: bool = False, gradient_checkpointing: bool = False, sharded=False
):
    """The SFT variant as a LocalModel, checked against the fingerprint its reference log-probs were scored with."""
    from models.local import Variant, load_variant

    variant = Variant(**spec["variant"])
    if load_in_4bit:
        return load_4bit(
            variant, spec["models_dir"], gradient_checkpointing=gradient_checkpointing, sharded=sharded
        )
    local = load_variant(variant, cache_dir=spec["models_dir"], dtype=spec.get("dtype"), device=_device(spec))
    expected = spec.get("ref_fingerprint")
    if expected and local.fingerprint != expected:
        raise ModelError(
            f"variant {variant.name!r} changed since its reference log-probs were computed "
            f"(fingerprint {local.fingerprint}, expected {expected}); start a new run"
        )
    return local


def _device(spec: dict[str, Any]) -> str:
    """Where this process loads the model: the run's device; the CPU when several processes share the GPUs out
    (the trainer then moves each rank's copy to its own device)."""
    device = os.environ.get(WORKER_DEVICE_ENV) or spec.get("device") or "cpu"  # cuda:N masked to cuda:0
    return "cpu" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else device


def load_4bit(variant, models_dir, *, gradient_checkpointing: bool = False, sharded: bool = False):
    """QLoRA: the variant's base in 4-bit NF4 (bf16 compute) on this process's GPU, its adapters merged in, ready for k-bit training.

    The 4-bit weights are not the ones the reference log-probs were scored with, so there is no fingerprint check.
    """
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from models.local import DEFAULT_BASE, LocalModel, check_variant_paths, merge_adapters
    from models.variants import looks_local

    check_variant_paths(variant.base, variant.adapters)
    if variant.base == DEFAULT_BASE:
        from models.gguf_cache import ensure_default_cache

        source = str(ensure_default_cache(models_dir))
    else:
        source = str(Path(variant.base).expanduser()) if looks_local(variant.base) else variant.base
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
        # ZeRO-3 / FSDP shard parameters of one dtype: store the 4-bit blocks as bf16 there.
        **({"bnb_4bit_quant_storage": torch.bfloat16} if sharded else {}),
    )
    device_map = None if sharded else {"": int(os.environ.get("LOCAL_RANK", "0"))}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=quant, dtype=torch.bfloat16, device_map=device_map
        )
    except Exception as exc:
        raise ModelError(" ".join(f"cannot load {variant.base!r} in 4-bit: {exc}".split())[:400]) from exc
    model = merge_adapters(model, variant.adapters)  # peft re-quantizes each merged layer (a small rounding)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    log.info("loaded %s in 4-bit NF4 from %s", variant.name, source)
    return LocalModel(model, tokenizer, name=variant.name, variant=variant)


def fill_reference(cfg, local, rows: list[dict[str, Any]], rd: RunDir, main_process: bool) -> dict[str, Any]:
    """Reference log-probs for `rows`: the parent's cached values, the misses scored here on the training device.

    With several processes each scores a share of the prompts; all of them then read every share.
    """
    from accelerate import PartialState

    from train.callbacks import _parent_gone
    from train.refcache import fill_in_worker

    device = cfg.device  # sets up the process group (and the device) the Trainer then uses
    state = PartialState()
    # ZeRO-3 / FSDP: the whole model fits no single device, so each process scores its share where it loaded it;
    # a 4-bit or device-mapped model already sits where it runs.
    placed = getattr(local.model, "hf_device_map", None) or getattr(local.model, "is_loaded_in_4bit", False)
    if not placed and not _sharded_weights() and local.model.device != device:
        local.model.to(device)

    def progress(done: int, total: int) -> None:
        if main_process:
            rd.write_json(
                STATUS,
                {"state": "running", "phase": "reference", "step": done, "total": total, "pid": os.getpid()},
            )

    single = state.num_processes == 1
    summary = fill_in_worker(
        local,
        rows,
        rd.path,
        max_length=cfg.max_length,
        truncation_mode=cfg.truncation_mode,
        batch_size=cfg.precompute_ref_batch_size or 8,
        rank=state.process_index,
        world=state.num_processes,
        barrier=state.wait_for_everyone,
        progress=progress,
        # One process can stop between chunks; several would leave the others waiting at the barrier.
        should_stop=(lambda: rd.cancel_requested() or _parent_gone()) if single else None,
    )
    if main_process:
        rd.write_json(REFERENCE, summary)
    return summary


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a snapshot Parquet file as plain Python values."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def to_dataset(rows: list[dict[str, Any]], *, with_ref: bool = True):
    """TRL's conversational preference format, plus the cached reference log-probs."""
    from datasets import Dataset

    records = []
    for row in rows:
        record = {
            "prompt": [{"role": m["role"], "content": m["content"]} for m in row["prompt"]],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        if with_ref:
            record["ref_chosen_logps"] = float(row["ref_chosen_logps"])
            record["ref_rejected_logps"] = float(row["ref_rejected_logps"])
        records.append(record)
    return Dataset.from_list(records)


def lora_config(cfg, model=None):
    """A fresh LoRA adapter (B = 0, so the policy starts exactly at the reference).

    With `cfg.lora_layers` set, only the last that many of `model`'s decoder blocks are adapted.
    """
    from peft import LoraConfig

    targets = cfg.lora_targets if isinstance(cfg.lora_targets, str) else list(cfg.lora_targets)
    layers = None
    if cfg.lora_layers:
        if model is None:
            raise ValueError("lora_layers needs the model, to count its decoder blocks")
        n_layers = model.config.num_hidden_layers
        layers = list(range(max(0, n_layers - cfg.lora_layers), n_layers))
        if targets == "all-linear":  # peft takes a block subset only with a list of names
            targets = linear_layer_names(model)
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )


def linear_layer_names(model) -> list[str]:
    """What peft's 'all-linear' means: the names of the linear layers inside the decoder blocks (not lm_head)."""
    import torch

    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and ".layers." in name
    }
    return sorted(names)


def build_trainer(
    cfg, local, train_rows, val_rows, rd: RunDir, *, kl_prompts: list[list[dict]], on_trainer=None
):
    """(CachedRefDPOTrainer with LoRA on `local`'s model, run-files callback, KL callback or None)."""
    import datasets

    from train.callbacks import make_callbacks
    from train.dpo_trainer import cached_ref_trainer_class, check_trl_path

    check_trl_path()  # an unpinned TRL upgrade fails here, loudly, instead of training on recomputed references
    datasets.disable_progress_bars()
    files, kl = make_callbacks(
        rd,
        tokenizer=local.tokenizer,
        kl_prompts=kl_prompts[: cfg.kl_prompts],
        kl_every=cfg.kl_every,
        kl_tokens=cfg.kl_max_new_tokens,
        seed=cfg.seed,
    )
    trainer = cached_ref_trainer_class()(
        model=local.model,
        args=cfg,
        train_dataset=to_dataset(train_rows),
        eval_dataset=to_dataset(val_rows),
        processing_class=local.tokenizer,
        peft_config=lora_config(cfg, local.model),
        callbacks=[c for c in (files, kl) if c is not None],
    )
    if on_trainer is not None:
        on_trainer(trainer)
    return trainer, files, kl


def save_adapter(trainer, rd: RunDir) -> Path:
    """Save the LoRA adapter to a temporary folder, then rename it to RUN_DIR/adapter in one step."""
    partial = rd / f".{ADAPTER}.partial"
    target = rd / ADAPTER
    if trainer.accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    if getattr(trainer, "is_fsdp_enabled", False):
        # A sharded state dict would save one shard per process: gather the adapter into one ordinary file.
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(partial))  # every process: ZeRO-3 / FSDP gather the weights collectively
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    return target


def _evaluated_last_step(trainer) -> bool:
    """Whether the Trainer logged a validation pass at its final step (else the metrics would hold it twice)."""
    step = trainer.state.global_step
    return any(row.get("step") == step and "eval_loss" in row for row in trainer.state.log_history)


def _train_seconds(trainer) -> float | None:
    for row in reversed(trainer.state.log_history):
        if "train_runtime" in row:
            return float(row["train_runtime"])
    return None


def _sharded_weights() -> bool:
    """Whether `accelerate launch` shards the weights across processes (DeepSpeed ZeRO-3 or FSDP)."""
    return (
        os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
        or os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    )


def _is_main_process() -> bool:
    # Under `accelerate launch` every rank runs this module; RANK is set before any torch import.
    return int(os.environ.get("RANK", "0")) == 0


if __name__ == "__main__":
    sys.exit(main())
