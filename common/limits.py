"""Hard upper bounds on what a user can start; a model's own context window bounds tokens further."""

from __future__ import annotations

from common.errors import UserInputError

# Longest response any job may ask for: beyond a small model's context, and hours of CPU per response.
MAX_NEW_TOKENS = 8192
# Passes over the data of one SFT or DPO run.
MAX_EPOCHS = 100
# Prompts, examples or triples one job may take (a `--limit`).
MAX_ITEMS = 1_000_000
# Responses per prompt and rows per forward batch.
MAX_PER_PROMPT = 16
MAX_BATCH_SIZE = 1024
# Tokens kept per training example.
MAX_SEQUENCE_LENGTH = 32768


def check_int_range(name: str, value, low: int, high: int) -> None:
    """Raise a one-line UserInputError unless `value` is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserInputError(f"{name} must be an integer from {low} to {high}, got {value!r}")
