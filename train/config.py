"""DPO run settings: TRL's `DPOConfig` plus PrefLab's fields, their defaults, help and validation.

Presets, YAML files and the JSON round trip live in `train.presets` (re-exported here). `PrefLabDPOConfig` subclasses TRL's `DPOConfig`, so importing it imports torch. It is built on first access
(`from train.config import PrefLabDPOConfig` or `config_class()`), which keeps `import train.config` torch-free
for the services and the UI.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from common.checks import check_dropout, check_int, check_positive, is_number
from common.errors import UserInputError
from common.flags import setting
from common.limits import MAX_EPOCHS, MAX_ITEMS, MAX_NEW_TOKENS, check_int_range
from common.text import one_line
from common.vocab import LabelSource, PairPolicy, plain, values
from train.presets import (  # noqa: F401 - re-exported: callers import them from train.config
    ALIASES,
    PRESETS,
    build_config,
    config_from_overrides,
    config_overrides,
    config_to_dict,
    load_config,
    read_yaml,
    set_auto_eval_steps,
)

LABEL_SOURCES = values(LabelSource)
PAIR_POLICIES = values(PairPolicy)
# TRL 1.16's loss types (DPOConfig.loss_type help); every one of them reads the reference log-probs from the batch.
LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
# Worker processes of one run (one per GPU, all nodes together): room for 16 nodes of 8, no fork bomb on a typo.
MAX_PROCESSES = 128


@dataclass
class PrefLabFields:
    """PrefLab's own fields and its DPO defaults; mixed into TRL's DPOConfig by `config_class()`.

    Their help is what `launch.py train --help` shows (common.flags); YAML files and the UI set the same fields.
    """

    variant: str = setting("sft", "Starting variant and DPO reference (base + SFT adapters).")
    model_device: str = setting(
        "auto",
        "Where the worker trains (YAML `device`): auto (where PrefLab's models run: CUDA, then MPS, then CPU), "
        "cpu, cuda, cuda:N, mps.",
    )
    lora_r: int = setting(16, "Rank of the DPO LoRA update matrices.")
    lora_alpha: float = setting(32.0, "LoRA scaling numerator (update scaled by alpha/r).")
    lora_dropout: float = setting(
        0.0, "Dropout on the LoRA branch, in [0, 1); TRL disables dropout unless disable_dropout=False."
    )
    lora_targets: Any = setting(
        "all-linear", "Layer names that get a LoRA adapter, or 'all-linear' (every linear layer but lm_head)."
    )
    lora_layers: int | None = setting(
        None,
        "Adapt only the last N decoder blocks (default: all). The backward pass stops below the lowest adapted "
        "block, so on a CPU the last third of the blocks trains about 1.6x faster.",
    )
    val_fraction: float = setting(0.1, "Share of pairs held out for validation, in (0, 0.5].")
    min_val_pairs: int = setting(4, "Validation triples required (moved from train if short).")
    min_train_pairs: int = setting(16, "Training triples required to start a run.")
    tie_policy: str = setting(
        PairPolicy.DROP.value,
        "Ties: 'drop', or 'both_orders' (two mirrored triples that pull the gap toward zero).",
        choices=PAIR_POLICIES,
    )
    both_bad_policy: str = setting(
        PairPolicy.DROP.value, "Both-bad votes: 'drop', or 'both_orders' like ties.", choices=PAIR_POLICIES
    )
    sources: Any = setting(
        plain(LabelSource.HUMAN, LabelSource.IMPORT),
        "Label sources to train on: human, import, and judge (only when asked).",
    )
    limit: int | None = setting(None, "Use at most this many triples (oldest labels first).")
    kl_every: int = setting(10, "Optimizer steps between two KL estimates to the reference; 0 disables them.")
    kl_prompts: int = setting(4, "Held-out prompts sampled for each KL estimate.")
    kl_max_new_tokens: int = setting(64, "Tokens sampled per prompt for the KL estimate.")
    split_seed: int = setting(0, "Seed of the train/validation split by pair id.")
    processes: int = setting(
        1,
        "Worker processes, one per GPU (`accelerate launch`; torchrun with gloo on a CPU). With "
        "accelerate_config and 1 here, the file's num_processes.",
    )
    accelerate_config: str | None = setting(
        None,
        "An `accelerate config` YAML (DeepSpeed ZeRO-2/3, FSDP, multi-GPU) the worker is launched with; "
        "examples in train/accelerate_configs/.",
    )
    load_in_4bit: bool = setting(
        False,
        "QLoRA: load the variant in 4-bit NF4 (bitsandbytes, bf16 compute) on a CUDA GPU; needs the `qlora` "
        "extra (pip install 'preflab[qlora]').",
    )
    evals_per_run: int = setting(10, "Validation passes per run when eval_steps is not set.")

    # TRL / transformers fields whose defaults PrefLab changes (see the issue: common DPO practice, CPU-safe), or
    # that its CLI exposes (beta, loss_type, max_steps: TRL 1.16's defaults, with PrefLab's help).
    beta: float = setting(0.1, "DPO beta: higher keeps the policy closer to the reference.")
    loss_type: Any = setting(
        help="TRL loss: sigmoid, ipo, hinge, robust, ... (comma-separated to mix).",
        factory=lambda: ["sigmoid"],
    )
    max_steps: int = setting(-1, "Stop after this many optimizer steps (-1, the default: num_train_epochs).")
    learning_rate: float = setting(5e-6, "Peak AdamW learning rate.")
    num_train_epochs: float = setting(1.0, "Passes over the training triples.")
    per_device_train_batch_size: int = setting(2, "Triples per device and micro-batch.")
    gradient_accumulation_steps: int = setting(8, "Micro-batches per optimizer step.")
    bf16: bool | None = setting(False, "bfloat16 mixed precision (GPU only in practice).")
    activation_checkpointing: bool | None = setting(
        False,
        "Recompute activations in the backward pass: less memory for long pairs or big models, ~20% slower.",
    )
    gradient_checkpointing: bool | None = setting(
        None, "Deprecated transformers alias of activation_checkpointing."
    )
    logging_steps: float = setting(1, "Optimizer steps between two logged metric rows.")
    eval_strategy: Any = setting("steps", "When to evaluate the validation split.")
    save_strategy: Any = setting(
        "steps", "Trainer checkpoints, which `train --resume RUN_ID` continues from; 'no' turns them off."
    )
    save_steps: float = setting(
        0.2,
        "Optimizer steps between two checkpoints; below 1, a share of the run's steps (0.2: five per run). A "
        "LoRA checkpoint holds the adapter and its optimizer state only.",
    )
    save_total_limit: int | None = setting(
        2, "Checkpoints kept (the newest ones); the final adapter is saved apart."
    )
    report_to: Any = setting("none", "Extra loggers: none, tensorboard, wandb (when installed), ...")
    use_cpu: bool | None = setting(None, "Train on the CPU; unset: when no CUDA device.")
    precompute_ref_log_probs: bool = setting(
        True, "Always true: reference log-probs come from PrefLab's cache."
    )
    pad_to_multiple_of: Any = setting(
        None, "Pad sequences to a multiple of this; None pads to the batch maximum."
    )

    def check_preflab_fields(self) -> None:
        """Normalise and validate PrefLab's fields, raising UserInputError that names the bad value."""
        if not isinstance(self.variant, str) or not self.variant.strip():
            raise UserInputError(f"variant must be a non-empty name, got {self.variant!r}")
        from models.devices import check_device

        self.model_device = check_device(self.model_device)
        check_int("lora_r", self.lora_r, minimum=1)
        check_positive("lora_alpha", self.lora_alpha)
        check_dropout("lora_dropout", self.lora_dropout)
        self.lora_targets = _targets(self.lora_targets)
        if self.lora_layers is not None:
            check_int("lora_layers", self.lora_layers, minimum=1)
        if not is_number(self.val_fraction) or not 0 < self.val_fraction <= 0.5:
            raise UserInputError(f"val_fraction must be in (0, 0.5], got {self.val_fraction!r}")
        check_int("min_val_pairs", self.min_val_pairs, minimum=1)
        check_int("min_train_pairs", self.min_train_pairs, minimum=1)
        for name in ("tie_policy", "both_bad_policy"):
            if getattr(self, name) not in PAIR_POLICIES:
                raise UserInputError(
                    f"{name} must be one of {', '.join(PAIR_POLICIES)}, got {getattr(self, name)!r}"
                )
        self.sources = _sources(self.sources)
        if self.limit is not None:
            check_int_range("limit", self.limit, 1, MAX_ITEMS)
        check_int("kl_every", self.kl_every, minimum=0)
        check_int("kl_prompts", self.kl_prompts, minimum=1)
        check_int_range("kl_max_new_tokens", self.kl_max_new_tokens, 1, MAX_NEW_TOKENS)
        check_int("split_seed", self.split_seed, minimum=0)
        check_int("evals_per_run", self.evals_per_run, minimum=1)
        check_int_range("processes", self.processes, 1, MAX_PROCESSES)
        if self.accelerate_config is not None:
            self.accelerate_config, file_processes, precision = _accelerate_config(self.accelerate_config)
            if self.processes == 1 and file_processes:
                check_int_range("processes", file_processes, 1, MAX_PROCESSES)
                self.processes = file_processes
            if precision in ("bf16", "fp16") and not (self.bf16 or self.fp16):
                # The launcher autocasts in the file's precision; DeepSpeed refuses a run whose settings disagree.
                setattr(self, precision, True)
        if not isinstance(self.load_in_4bit, bool):
            raise UserInputError(f"load_in_4bit must be true or false, got {self.load_in_4bit!r}")
        check_positive("beta", self.beta)
        check_positive("learning_rate", self.learning_rate)
        check_positive("num_train_epochs", self.num_train_epochs)
        if self.num_train_epochs > MAX_EPOCHS:
            raise UserInputError(
                f"num_train_epochs must be at most {MAX_EPOCHS}, got {self.num_train_epochs!r}"
            )
        check_int("per_device_train_batch_size", self.per_device_train_batch_size, minimum=1)
        check_int("gradient_accumulation_steps", self.gradient_accumulation_steps, minimum=1)
        self.loss_type = _loss_types(self.loss_type)
        if self.precompute_ref_log_probs is not True:
            raise UserInputError(
                f"precompute_ref_log_probs must stay true (PrefLab feeds cached reference log-probs), "
                f"got {self.precompute_ref_log_probs!r}"
            )
        if self.ld_alpha is not None:
            # The cache holds plain summed log-probs; LD-DPO reweights the reference's tokens per pair.
            raise UserInputError(
                f"ld_alpha is not supported with cached reference log-probs, got {self.ld_alpha!r}"
            )
        if self.sync_ref_model:
            raise UserInputError("sync_ref_model is not supported: the reference is the fixed SFT variant")
        if self.gradient_checkpointing is not None:
            # transformers 5 keeps the old name only as an alias that the new one silently overrides.
            self.activation_checkpointing, self.gradient_checkpointing = (
                bool(self.gradient_checkpointing),
                None,
            )
        if self.use_cpu is None:
            import torch

            # A CPU-only machine would otherwise fail inside accelerate with a less direct message.
            accelerator = torch.cuda.is_available() or torch.backends.mps.is_available()
            self.use_cpu = self.model_device == "cpu" or not accelerator
        if self.load_in_4bit:
            _check_4bit(self.use_cpu)


_CLASS = None


def config_class():
    """`PrefLabDPOConfig`: TRL's DPOConfig with PrefLab's fields (imports trl and torch on first call)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from trl import DPOConfig

    @dataclass
    class PrefLabDPOConfig(PrefLabFields, DPOConfig):
        """TRL's DPOConfig plus PrefLab's fields (variant, LoRA, split, label policies, KL estimate)."""

        def __post_init__(self):
            if isinstance(self.loss_type, str):
                self.loss_type = [t.strip() for t in self.loss_type.split(",") if t.strip()]
            self.check_preflab_fields()
            # Remembered before transformers copies logging_steps into it: None asks for `evals_per_run` passes.
            self.auto_eval_steps = self.eval_steps is None
            try:
                DPOConfig.__post_init__(self)
            except (ValueError, TypeError) as exc:  # transformers' own checks: show them as one line
                raise UserInputError(one_line(str(exc))) from exc

    # Importable by name (module __getattr__ below), so pickle can save it, e.g. in Trainer's training_args.bin.
    PrefLabDPOConfig.__module__ = __name__
    PrefLabDPOConfig.__qualname__ = "PrefLabDPOConfig"
    _CLASS = PrefLabDPOConfig
    return _CLASS


def __getattr__(name: str):
    if name == "PrefLabDPOConfig":
        return config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def field_names() -> set[str]:
    """Every settable field of PrefLabDPOConfig."""
    return {f.name for f in fields(config_class()) if f.init}


def _targets(value) -> str | tuple[str, ...]:
    if value == "all-linear":
        return value
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or any(not isinstance(v, str) or not v for v in value)
    ):
        raise UserInputError(
            f"lora_targets must be 'all-linear' or a non-empty list of layer names, got {value!r}"
        )
    if "lm_head" in value:
        # TRL computes log-probs from lm_head.weight directly, so an adapter there would never train.
        raise UserInputError(f"lora_targets cannot include 'lm_head', got {list(value)!r}")
    return tuple(value)


def _sources(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise UserInputError(f"sources must be a non-empty list of {', '.join(LABEL_SOURCES)}, got {value!r}")
    bad = [v for v in value if v not in LABEL_SOURCES]
    if bad:
        raise UserInputError(f"sources must be among {', '.join(LABEL_SOURCES)}, got {bad[0]!r}")
    return tuple(dict.fromkeys(value))


def _loss_types(value) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value:
        raise UserInputError(f"loss_type must name at least one loss, got {value!r}")
    for loss in value:
        if loss not in LOSS_TYPES:
            close = difflib.get_close_matches(str(loss), LOSS_TYPES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserInputError(f"loss_type {loss!r} is not one of TRL's losses{hint}")
    return list(value)


def _accelerate_config(value) -> tuple[str, int | None, str | None]:
    """(absolute path, num_processes, mixed_precision) of an accelerate config file, refused unless a mapping."""
    if not isinstance(value, str) or not value.strip():
        raise UserInputError(f"accelerate_config must be the path of a YAML file, got {value!r}")
    path = Path(value).expanduser().absolute()
    if not path.is_file():
        raise UserInputError(f"accelerate_config {path} is missing (write one with `accelerate config`)")
    try:
        data = read_yaml(path)
    except UserInputError as exc:
        raise UserInputError(f"accelerate_config: {exc}") from exc
    n = data.get("num_processes")
    n = n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else None
    return str(path), n, data.get("mixed_precision")


def _check_4bit(use_cpu: bool | None) -> None:
    """QLoRA needs bitsandbytes and a CUDA GPU: refuse in one line before any run starts."""
    import importlib.util

    import torch

    if use_cpu or not torch.cuda.is_available():
        raise UserInputError("load_in_4bit needs a CUDA GPU (bitsandbytes 4-bit); this run is on the CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserInputError("load_in_4bit needs bitsandbytes: pip install 'preflab[qlora]'")
