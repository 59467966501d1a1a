"""DPO run settings: TRL's `DPOConfig` plus PrefLab's fields, presets, YAML, JSON round trips.

`PrefLabDPOConfig` subclasses TRL's `DPOConfig`, so importing it imports torch. It is built on first access
(`from train.config import PrefLabDPOConfig` or `config_class()`), which keeps `import train.config` torch-free
for the services and the UI.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from errors import UserInputError
from limits import MAX_EPOCHS, MAX_ITEMS, MAX_NEW_TOKENS, check_int_range

LABEL_SOURCES = ("human", "judge", "import")
PAIR_POLICIES = ("drop", "both_orders")
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
# Short names people type in YAML files, mapped to the TrainingArguments fields they mean.
ALIASES = {
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "device": "model_device",
}

PRESETS: dict[str, dict[str, Any]] = {
    # Common DPO practice (Zephyr / TRL examples): the class defaults below.
    "default": {},
    # LoRA on a few hundred demo triples, sized for a CPU: one epoch at 20x the full fine-tune learning rate (a
    # LoRA update needs ~10x, and one pass instead of two gets twice that), small accumulation for a few dozen
    # optimizer steps, LoRA on the last 10 blocks only (the backward pass stops there: ~1.6x faster steps on
    # SmolLM2-135M's 30 blocks), and 4 validation passes instead of 10 (each is a forward over the split).
    "demo": {
        "learning_rate": 1e-4,
        "num_train_epochs": 1.0,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "warmup_steps": 0.1,
        "lr_scheduler_type": "cosine",
        "lora_r": 16,
        "lora_alpha": 32.0,
        "lora_layers": 10,
        "evals_per_run": 4,
        "kl_every": 5,
    },
}


@dataclass
class PrefLabFields:
    """PrefLab's own fields and its DPO defaults; mixed into TRL's DPOConfig by `config_class()`."""

    variant: str = field(
        default="sft", metadata={"help": "Starting variant and DPO reference (base + SFT adapters)."}
    )
    model_device: str = field(
        default="auto",
        metadata={
            "help": "Where the worker trains (YAML `device`): auto (where PrefLab's models run: CUDA, then MPS, "
            "then CPU), cpu, cuda, cuda:N, mps."
        },
    )
    lora_r: int = field(default=16, metadata={"help": "Rank of the DPO LoRA update matrices."})
    lora_alpha: float = field(
        default=32.0, metadata={"help": "LoRA scaling numerator (update scaled by alpha/r)."}
    )
    lora_dropout: float = field(
        default=0.0,
        metadata={
            "help": "Dropout on the LoRA branch, in [0, 1); TRL disables dropout unless disable_dropout=False."
        },
    )
    lora_targets: Any = field(
        default="all-linear",
        metadata={
            "help": "Layer names that get a LoRA adapter, or 'all-linear' (every linear layer but lm_head)."
        },
    )
    lora_layers: int | None = field(
        default=None,
        metadata={
            "help": "Adapt only the last N decoder blocks (default: all). The backward pass stops below the "
            "lowest adapted block, so on a CPU the last third of the blocks trains about 1.6x faster."
        },
    )
    val_fraction: float = field(
        default=0.1, metadata={"help": "Share of pairs held out for validation, in (0, 0.5]."}
    )
    min_val_pairs: int = field(
        default=4, metadata={"help": "Validation triples required (moved from train if short)."}
    )
    min_train_pairs: int = field(default=16, metadata={"help": "Training triples required to start a run."})
    tie_policy: str = field(
        default="drop",
        metadata={
            "help": "Ties: 'drop', or 'both_orders' (two mirrored triples that pull the gap toward zero)."
        },
    )
    both_bad_policy: str = field(
        default="drop", metadata={"help": "Both-bad votes: 'drop', or 'both_orders' like ties."}
    )
    sources: Any = field(
        default=("human", "import"),
        metadata={"help": "Label sources to train on: human, import, and judge (only when asked)."},
    )
    limit: int | None = field(
        default=None, metadata={"help": "Use at most this many triples (oldest labels first)."}
    )
    kl_every: int = field(
        default=10,
        metadata={"help": "Optimizer steps between two KL estimates to the reference; 0 disables them."},
    )
    kl_prompts: int = field(default=4, metadata={"help": "Held-out prompts sampled for each KL estimate."})
    kl_max_new_tokens: int = field(
        default=64, metadata={"help": "Tokens sampled per prompt for the KL estimate."}
    )
    split_seed: int = field(default=0, metadata={"help": "Seed of the train/validation split by pair id."})
    processes: int = field(
        default=1,
        metadata={
            "help": "Worker processes, one per GPU (`accelerate launch`; torchrun with gloo on a CPU). With "
            "accelerate_config and 1 here, the file's num_processes."
        },
    )
    accelerate_config: str | None = field(
        default=None,
        metadata={
            "help": "An `accelerate config` YAML (DeepSpeed ZeRO-2/3, FSDP, multi-GPU) the worker is launched "
            "with; examples in train/accelerate_configs/."
        },
    )
    load_in_4bit: bool = field(
        default=False,
        metadata={
            "help": "QLoRA: load the variant in 4-bit NF4 (bitsandbytes, bf16 compute) on a CUDA GPU; needs "
            "the `qlora` extra."
        },
    )
    evals_per_run: int = field(
        default=10, metadata={"help": "Validation passes per run when eval_steps is not set."}
    )

    # TRL / transformers fields whose defaults PrefLab changes (see the issue: common DPO practice, CPU-safe).
    learning_rate: float = field(default=5e-6, metadata={"help": "Peak AdamW learning rate."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the training triples."})
    per_device_train_batch_size: int = field(
        default=2, metadata={"help": "Triples per device and micro-batch."}
    )
    gradient_accumulation_steps: int = field(
        default=8, metadata={"help": "Micro-batches per optimizer step."}
    )
    bf16: bool | None = field(
        default=False, metadata={"help": "bfloat16 mixed precision (GPU only in practice)."}
    )
    activation_checkpointing: bool | None = field(
        default=False, metadata={"help": "Recompute activations in backward to save memory (slower)."}
    )
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated transformers alias of activation_checkpointing."}
    )
    logging_steps: float = field(
        default=1, metadata={"help": "Optimizer steps between two logged metric rows."}
    )
    eval_strategy: Any = field(default="steps", metadata={"help": "When to evaluate the validation split."})
    save_strategy: Any = field(
        default="steps",
        metadata={
            "help": "Trainer checkpoints, which `train --resume RUN_ID` continues from; 'no' turns them off."
        },
    )
    save_steps: float = field(
        default=0.2,
        metadata={
            "help": "Optimizer steps between two checkpoints; below 1, a share of the run's steps (0.2: five per "
            "run). A LoRA checkpoint holds the adapter and its optimizer state only."
        },
    )
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Checkpoints kept (the newest ones); the final adapter is saved apart."}
    )
    report_to: Any = field(default="none", metadata={"help": "Extra loggers: none, tensorboard, wandb, ..."})
    use_cpu: bool | None = field(
        default=None, metadata={"help": "Train on the CPU; unset: when no CUDA device."}
    )
    precompute_ref_log_probs: bool = field(
        default=True, metadata={"help": "Always true: reference log-probs come from PrefLab's cache."}
    )
    pad_to_multiple_of: Any = field(
        default=None,
        metadata={"help": "Pad sequences to a multiple of this; None pads to the batch maximum."},
    )

    def check_preflab_fields(self) -> None:
        """Normalise and validate PrefLab's fields, raising UserInputError that names the bad value."""
        if not isinstance(self.variant, str) or not self.variant.strip():
            raise UserInputError(f"variant must be a non-empty name, got {self.variant!r}")
        from models.devices import check_device

        self.model_device = check_device(self.model_device)
        _check_int("lora_r", self.lora_r, minimum=1)
        _check_positive("lora_alpha", self.lora_alpha)
        if not _is_number(self.lora_dropout) or not 0 <= self.lora_dropout < 1:
            raise UserInputError(f"lora_dropout must be a number in [0, 1), got {self.lora_dropout!r}")
        self.lora_targets = _targets(self.lora_targets)
        if self.lora_layers is not None:
            _check_int("lora_layers", self.lora_layers, minimum=1)
        if not _is_number(self.val_fraction) or not 0 < self.val_fraction <= 0.5:
            raise UserInputError(f"val_fraction must be in (0, 0.5], got {self.val_fraction!r}")
        _check_int("min_val_pairs", self.min_val_pairs, minimum=1)
        _check_int("min_train_pairs", self.min_train_pairs, minimum=1)
        for name in ("tie_policy", "both_bad_policy"):
            if getattr(self, name) not in PAIR_POLICIES:
                raise UserInputError(
                    f"{name} must be one of {', '.join(PAIR_POLICIES)}, got {getattr(self, name)!r}"
                )
        self.sources = _sources(self.sources)
        if self.limit is not None:
            check_int_range("limit", self.limit, 1, MAX_ITEMS)
        _check_int("kl_every", self.kl_every, minimum=0)
        _check_int("kl_prompts", self.kl_prompts, minimum=1)
        check_int_range("kl_max_new_tokens", self.kl_max_new_tokens, 1, MAX_NEW_TOKENS)
        _check_int("split_seed", self.split_seed, minimum=0)
        _check_int("evals_per_run", self.evals_per_run, minimum=1)
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
        _check_positive("beta", self.beta)
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("num_train_epochs", self.num_train_epochs)
        if self.num_train_epochs > MAX_EPOCHS:
            raise UserInputError(
                f"num_train_epochs must be at most {MAX_EPOCHS}, got {self.num_train_epochs!r}"
            )
        _check_int("per_device_train_batch_size", self.per_device_train_batch_size, minimum=1)
        _check_int("gradient_accumulation_steps", self.gradient_accumulation_steps, minimum=1)
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
                raise UserInputError(_one_line(str(exc))) from exc

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


def set_auto_eval_steps(cfg, n_train: int, processes: int = 1) -> None:
    """Without an explicit eval_steps, validate about `evals_per_run` times over the run."""
    if not getattr(cfg, "auto_eval_steps", False):
        return
    per_batch = cfg.per_device_train_batch_size * processes
    per_epoch = max(1, math.ceil(math.ceil(n_train / per_batch) / cfg.gradient_accumulation_steps))
    total = (
        cfg.max_steps if cfg.max_steps and cfg.max_steps > 0 else math.ceil(cfg.num_train_epochs * per_epoch)
    )
    cfg.eval_steps = max(1, total // cfg.evals_per_run)


def load_config(
    yaml_path: str | Path | None = None, preset: str = "default", overrides: dict[str, Any] | None = None
):
    """A PrefLabDPOConfig from a preset, then a YAML file, then flags (None means "not given")."""
    if preset not in PRESETS:
        raise UserInputError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    values: dict[str, Any] = dict(PRESETS[preset])
    if yaml_path is not None:
        values.update(_normalise_keys(read_yaml(yaml_path), f"config file {yaml_path}"))
    values.update(_normalise_keys({k: v for k, v in (overrides or {}).items() if v is not None}, "flags"))
    return build_config(values)


def build_config(values: dict[str, Any]):
    """A PrefLabDPOConfig from field values; unknown names are refused with a suggestion."""
    cls = config_class()
    _normalise_keys(values, "settings")
    return cls(**values)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file."""
    import yaml

    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserInputError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise UserInputError(_one_line(f"config file {path} is not valid YAML: {exc}")) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserInputError(f"config file {path} must hold a mapping of settings, got {type(data).__name__}")
    return data


def config_to_dict(cfg) -> dict[str, Any]:
    """Every field of the config as JSON-ready values (for the runs table)."""
    return json.loads(json.dumps(cfg.to_dict(), default=str))


def config_overrides(cfg) -> dict[str, Any]:
    """The fields that differ from a default PrefLabDPOConfig: what a worker needs to rebuild it."""
    default = _default_dict()
    current = config_to_dict(cfg)
    skip = {"output_dir", "logging_dir"}  # where a run writes is the worker's business
    return {k: v for k, v in current.items() if k not in skip and default.get(k) != v}


def config_from_overrides(values: dict[str, Any], **extra: Any):
    """Rebuild a config from `config_overrides` output (plus e.g. output_dir)."""
    return build_config({**values, **extra})


_DEFAULT: dict[str, Any] | None = None


def _default_dict() -> dict[str, Any]:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = config_to_dict(config_class()())
    return _DEFAULT


def _normalise_keys(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Map aliases to field names and refuse unknown ones, in place."""
    known = field_names()
    for key in list(values):
        if not isinstance(key, str):
            raise UserInputError(f"{where}: setting names must be strings, got {key!r}")
        name = ALIASES.get(key, key.replace("-", "_"))
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known | set(ALIASES)), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserInputError(f"{where}: unknown setting {key!r}{hint}")
        if name != key:
            values[name] = values.pop(key)
    return values


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


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(name: str, value) -> None:
    if not _is_number(value) or value <= 0:
        raise UserInputError(f"{name} must be a positive number, got {value!r}")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]
