"""Settings of a demo LoRA SFT run, validated before any model is touched; their help is `sft --help`'s."""

from __future__ import annotations

from dataclasses import dataclass

from common.checks import check_dropout, check_int, check_positive
from common.errors import UserInputError
from common.flags import Flag, setting
from common.limits import MAX_EPOCHS, MAX_ITEMS, MAX_SEQUENCE_LENGTH, check_int_range

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class SFTRunConfig:
    """Hyper-parameters of a LoRA SFT run on gold answers."""

    # 1, what `launch.py sft` and the Train tab have always run (the field said 2 while nothing used it).
    epochs: int = setting(1, "Passes over the examples; 1 takes about 30 min on 2 busy cores.")
    learning_rate: float = setting(2e-4, "Peak AdamW learning rate; LoRA wants ~10x a full fine-tune's.")
    # 4 x 2 = the effective batch of 8 at half the peak memory: a 49k-token vocabulary makes the logits of
    # 8 x 512 tokens alone ~0.8 GB in float32, and the loss keeps several copies (measured ~9 GB at batch 8).
    batch_size: int = setting(4, "Examples per forward/backward pass.")
    grad_accum: int = setting(2, "Batches accumulated into one optimizer step.")
    lora_r: int = setting(16, "Rank of the LoRA update matrices.")
    lora_alpha: float = setting(32, "LoRA scaling numerator (update scaled by alpha/r).")
    lora_dropout: float = setting(0.05, "Dropout on the LoRA branch input, in [0, 1).")
    target_modules: tuple[str, ...] = setting(
        DEFAULT_TARGET_MODULES, "Names of the linear layers that get a LoRA adapter."
    )
    max_length: int = setting(512, "Tokens kept per example (prompt + answer), truncated from the end.")
    seed: int = setting(0, "Seed for LoRA init, shuffling and dropout.")
    limit: int | None = setting(None, "Train on at most this many examples (all if unset).")
    logging_steps: int = setting(1, "Optimizer steps between two logged losses.")

    def __post_init__(self):
        for name in ("batch_size", "grad_accum", "lora_r", "logging_steps"):
            check_int(name, getattr(self, name), minimum=1)
        check_int_range("epochs", self.epochs, 1, MAX_EPOCHS)
        check_int_range("max_length", self.max_length, 2, MAX_SEQUENCE_LENGTH)
        check_int("seed", self.seed, minimum=0)
        if self.limit is not None:
            check_int_range("limit", self.limit, 1, MAX_ITEMS)
        check_positive("learning_rate", self.learning_rate)
        check_positive("lora_alpha", self.lora_alpha)
        check_dropout("lora_dropout", self.lora_dropout)
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


# The `sft` flags (launch.py): help and defaults are the fields' (common.flags); --base and --output-name are not
# settings of the run but of where it starts and what it registers.
SFT_FLAGS = (Flag("epochs"), Flag("learning_rate", "--lr"), Flag("batch_size"), Flag("limit"))
