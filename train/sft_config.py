"""Settings of a demo LoRA SFT run, validated before any model is touched."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from errors import UserInputError
from limits import MAX_EPOCHS, MAX_ITEMS, MAX_SEQUENCE_LENGTH, check_int_range

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class SFTRunConfig:
    """Hyper-parameters of a LoRA SFT run on gold answers."""

    epochs: int = field(default=2, metadata={"help": "Passes over the examples."})
    learning_rate: float = field(
        default=2e-4, metadata={"help": "Peak AdamW learning rate; LoRA wants ~10x a full fine-tune's."}
    )
    # 4 x 2 = the effective batch of 8 at half the peak memory: a 49k-token vocabulary makes the logits of
    # 8 x 512 tokens alone ~0.8 GB in float32, and the loss keeps several copies (measured ~9 GB at batch 8).
    batch_size: int = field(default=4, metadata={"help": "Examples per forward/backward pass."})
    grad_accum: int = field(default=2, metadata={"help": "Batches accumulated into one optimizer step."})
    lora_r: int = field(default=16, metadata={"help": "Rank of the LoRA update matrices."})
    lora_alpha: float = field(
        default=32, metadata={"help": "LoRA scaling numerator (update scaled by alpha/r)."}
    )
    lora_dropout: float = field(
        default=0.05, metadata={"help": "Dropout on the LoRA branch input, in [0, 1)."}
    )
    target_modules: tuple[str, ...] = field(
        default=DEFAULT_TARGET_MODULES,
        metadata={"help": "Names of the linear layers that get a LoRA adapter."},
    )
    max_length: int = field(
        default=512, metadata={"help": "Tokens kept per example (prompt + answer), truncated from the end."}
    )
    seed: int = field(default=0, metadata={"help": "Seed for LoRA init, shuffling and dropout."})
    limit: int | None = field(
        default=None, metadata={"help": "Train on at most this many examples (all if unset)."}
    )
    logging_steps: int = field(default=1, metadata={"help": "Optimizer steps between two logged losses."})

    def __post_init__(self):
        for name in ("batch_size", "grad_accum", "lora_r", "logging_steps"):
            _check_int(name, getattr(self, name), minimum=1)
        check_int_range("epochs", self.epochs, 1, MAX_EPOCHS)
        check_int_range("max_length", self.max_length, 2, MAX_SEQUENCE_LENGTH)
        _check_int("seed", self.seed, minimum=0)
        if self.limit is not None:
            check_int_range("limit", self.limit, 1, MAX_ITEMS)
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("lora_alpha", self.lora_alpha)
        if not _is_number(self.lora_dropout) or not 0 <= self.lora_dropout < 1:
            raise UserInputError(f"lora_dropout must be a number in [0, 1), got {self.lora_dropout!r}")
        modules = self.target_modules
        if isinstance(modules, str) or not isinstance(modules, (list, tuple)) or not modules:
            raise UserInputError(f"target_modules must be a non-empty list of layer names, got {modules!r}")
        if any(not isinstance(m, str) or not m.strip() for m in modules):
            raise UserInputError(f"target_modules must hold non-empty strings, got {modules!r}")
        if "lm_head" in modules:
            # TRL computes log-probs from lm_head.weight directly, so an adapter there would never train.
            raise UserInputError(f"target_modules cannot include 'lm_head', got {modules!r}")
        # Lists arrive from JSON and argparse; a tuple keeps the config comparable and safe to share.
        self.target_modules = tuple(modules)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(name: str, value) -> None:
    if not _is_number(value) or value <= 0:
        raise UserInputError(f"{name} must be a positive number, got {value!r}")
