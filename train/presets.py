"""Where a DPO run's settings come from: presets, a YAML file, flags, and the JSON round trip to the worker.

The dataclass itself (fields, defaults, validation) is `train.config`; everything here builds one from values.
"""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any

from common.errors import UserInputError
from common.text import one_line

# Short names people type in YAML files, mapped to the TrainingArguments fields they mean.
ALIASES = {
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "device": "model_device",
}

PRESETS: dict[str, dict[str, Any]] = {
    # Common DPO practice (Zephyr / TRL examples): the class defaults in train.config.
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
    from train.config import config_class  # train.config imports this module: import it when called

    _normalise_keys(values, "settings")
    return config_class()(**values)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file."""
    import yaml

    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserInputError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise UserInputError(one_line(f"config file {path} is not valid YAML: {exc}")) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserInputError(f"config file {path} must hold a mapping of settings, got {type(data).__name__}")
    return data


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
        _DEFAULT = config_to_dict(build_config({}))
    return _DEFAULT


def _normalise_keys(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Map aliases to field names and refuse unknown ones, in place."""
    from train.config import field_names

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
