"""Value checks that settings dataclasses share: each refusal is one line that names the setting and the value."""

from __future__ import annotations

import math

from common.errors import UserInputError


def is_number(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_int(name: str, value, *, minimum: int) -> None:
    """Refuse anything but an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_positive(name: str, value) -> None:
    """Refuse anything but a finite number > 0."""
    if not is_number(value) or value <= 0:
        raise UserInputError(f"{name} must be a positive number, got {value!r}")


def check_dropout(name: str, value) -> None:
    """Refuse a dropout outside [0, 1)."""
    if not is_number(value) or not 0 <= value < 1:
        raise UserInputError(f"{name} must be a number in [0, 1), got {value!r}")
