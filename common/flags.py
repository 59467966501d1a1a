"""Command-line flags generated from settings dataclasses: one source for each flag's help, default, type, choices.

A settings dataclass declares its fields with `setting(default, help, choices=...)`; a command picks the fields it
exposes with `Flag`s and `add_flags` adds them to its argparse parser, reading help, default, type and choices from
the field (the way transformers' `HfArgumentParser` does, but for a chosen subset of fields, under PrefLab's
historical flag names, with `store_true` booleans, and without importing transformers to build the CLI). The
`--help` text shows a generated flag's default, so the help cannot disagree with what runs.

A *layered* flag parses to None when it is not given, so a YAML file or a preset can fill the field (`train`); its
help still shows the dataclass default.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field
from typing import Any

HELP, CHOICES = "help", "choices"


def setting(
    default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None, choices=None
):
    """A dataclass field with the help text (and choices) that its flags, forms and docs show."""
    metadata: dict[str, Any] = {HELP: help}
    if choices is not None:
        metadata[CHOICES] = tuple(choices)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Flag:
    """How a command exposes one dataclass field: its flag name and what argparse needs beyond the field."""

    field: str
    flag: str | None = None  # default: --field-name
    layered: bool = False  # parse to None when not given (a preset or YAML file fills the field)
    repeat: bool = False  # action="append": one value per use of the flag
    choices: tuple[str, ...] | None = None  # where the dataclass (owned elsewhere) names none
    metavar: str | None = None
    type: Callable[[str], Any] | None = None  # what argparse converts the text with (default: from the field)
    show: Callable[[Any], str] | None = None  # how --help writes the default (default: `default_text`)

    @property
    def option(self) -> str:
        return self.flag or "--" + self.field.replace("_", "-")

    @property
    def dest(self) -> str:
        """The argparse attribute the flag parses into (argparse's own rule: the flag, dashes as underscores)."""
        return self.option.lstrip("-").replace("-", "_")


def field_help(cls: type, name: str) -> str:
    """A field's help: for a form's label or info line, the same text its flag shows."""
    return cls.__dataclass_fields__[name].metadata.get(HELP, "")


def field_default(f: Field) -> Any:
    """The value a dataclass field takes when it is not given."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def default_text(value: Any) -> str:
    """A default as a flag takes it: a tuple as comma-separated text, numbers as Python writes them."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def cli_default(f: Field, spec: Flag) -> Any:
    """The value argparse gives the flag when it is not on the command line."""
    if spec.layered or spec.repeat:
        return None
    value = field_default(f)
    return default_text(value) if isinstance(value, (tuple, list)) else value


def add_flags(parser: argparse.ArgumentParser, cls: type, flags: Iterable[Flag]) -> list[argparse.Action]:
    """Add one flag per `Flag` to `parser`, with help, default, type and choices from `cls`'s fields."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    actions = []
    for spec in flags:
        f = by_name[spec.field]
        kind = _kind(hints[f.name])
        kwargs: dict[str, Any] = {"help": f.metadata.get(HELP) or None, "default": cli_default(f, spec)}
        if kind is bool:
            kwargs["action"] = "store_true"
        else:
            if spec.type is not None or kind in (int, float):
                kwargs["type"] = spec.type or kind
            choices = spec.choices or f.metadata.get(CHOICES)
            if choices:
                kwargs["choices"] = list(choices)
            if spec.metavar:
                kwargs["metavar"] = spec.metavar
            if spec.repeat:
                kwargs["action"] = "append"
        action = parser.add_argument(spec.option, **kwargs)
        # Read by HelpFormatter (the shown default) and by tests/cli/test_flags.py (one source per flag).
        action.setting, action.repeat = f, spec.repeat
        action.shown_default = (spec.show or default_text)(field_default(f))
        actions.append(action)
    return actions


def given(args: argparse.Namespace, flags: Iterable[Flag]) -> dict[str, Any]:
    """The values of the flags that were given (not None), by dataclass field name."""
    values = {}
    for spec in flags:
        value = getattr(args, spec.dest, None)
        if value is not None:
            values[spec.field] = value
    return values


class HelpFormatter(argparse.HelpFormatter):
    """Shows a generated flag's default after its dataclass help; hand-written flags keep their own text."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if not text or not hasattr(action, "setting"):
            return text
        text = text.replace("%", "%%")  # argparse %-formats help; dataclass help is plain text
        shown = getattr(action, "shown_default", "")
        if getattr(action, "repeat", False) and "repeat" not in text:
            text += "; repeat for several"
        if shown in ("", "None", "False") or "default" in text.lower():
            return text
        shown = shown.replace("%", "%%")
        if text.endswith(".") and not text.endswith(".."):
            return f"{text[:-1]} (default {shown})."
        return f"{text} (default {shown})"


def _kind(hint: Any) -> type | None:
    """int, float, bool or str for a field's type hint (`X | None` read as X); None for anything else."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    return hint if hint in (int, float, bool, str) else None
