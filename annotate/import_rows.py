"""One raw record to one validated prompt: messages, system, split, gold and meta."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from common.vocab import Split, values
from store.import_queries import NewPrompt

from .import_readers import RowProblem, describe

ROLES = ("system", "user", "assistant")
# Columns with a meaning; every other column (except gold_*) goes to `meta`.
KNOWN_FIELDS = ("prompt", "messages", "system", "split", "gold")
GOLD_PREFIX = "gold_"
MAX_DEPTH = 64
MESSAGES_SHAPE = "expected a list of {role, content} messages"


def to_prompt(record: dict[str, Any], forced: str | None) -> tuple[NewPrompt, bool]:
    """One validated prompt; True when its split is still to be assigned from the seed."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        name = key if isinstance(key, str) else _key(key, None)
        _check_text(name, name)
        row[name] = _clean(value, name, 0)

    messages = _messages(row)
    system = _given(row, "system")
    if system is not None:
        if not isinstance(system, str):
            raise RowProblem("system", f"expected a string, got {describe(system)}")
        if messages[0]["role"] == "system":
            raise RowProblem("system", "the messages already start with a system message")
        messages = [{"role": "system", "content": system}, *messages]

    split = row_split(row)
    assigned = split is None and forced is None
    meta = {k: v for k, v in row.items() if k not in KNOWN_FIELDS and not _is_gold_part(k)}
    prompt = NewPrompt(messages, split or forced or Split.TRAIN.value, _gold(row), meta or None)
    return prompt, assigned


def row_split(row: dict[str, Any]) -> str | None:
    """The split a row names (train or heldout, in any case), or None when it names none."""
    split = _given(row, "split")
    if split is None:
        return None
    if not isinstance(split, str) or split.strip().lower() not in values(Split):
        shown = short(split) if isinstance(split, str) else describe(split)
        raise RowProblem("split", f"expected {' or '.join(map(repr, values(Split)))}, got {shown}")
    return split.strip().lower()


def _given(row: dict[str, Any], name: str) -> Any:
    """The value of an optional column; None, NaN (cleaned to None) and blank text mean not given."""
    value = row.get(name)
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _messages(row: dict[str, Any]) -> list[dict]:
    """The chat messages from `messages`, else from `prompt` (text, or a list of messages)."""
    raw = _given(row, "messages")
    if raw is not None:
        return _parse_messages(raw, "messages")
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        if not prompt.strip():
            raise RowProblem("prompt", "empty prompt")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list):
        return _parse_messages(prompt, "prompt")
    if prompt is not None:
        raise RowProblem("prompt", f"expected a string or a list of messages, got {describe(prompt)}")
    if "messages" in row and row["messages"] is not None:
        raise RowProblem("messages", f"{MESSAGES_SHAPE}, got an empty string")
    raise RowProblem("prompt", "missing: a row needs a 'prompt' or a 'messages' column")


def _parse_messages(raw: Any, field_name: str) -> list[dict]:
    if isinstance(raw, str):  # CSV cells (and some JSONL writers) hold the list as JSON text
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise RowProblem(field_name, f"{MESSAGES_SHAPE}, got a string that is not JSON") from None
        raw = _clean(raw, field_name, 0)
        if not isinstance(raw, list):
            raise RowProblem(field_name, f"{MESSAGES_SHAPE}, got JSON text holding {describe(raw)}")
    if not isinstance(raw, list):
        raise RowProblem(field_name, f"{MESSAGES_SHAPE}, got {describe(raw)}")
    if not raw:
        raise RowProblem(field_name, f"{MESSAGES_SHAPE}, got an empty list")
    messages = []
    for index, message in enumerate(raw, 1):
        if not isinstance(message, dict):
            raise RowProblem(
                field_name, f"message {index}: expected a {{role, content}} object, got {describe(message)}"
            )
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or role not in ROLES:
            shown = short(role) if isinstance(role, str) else describe(role)
            raise RowProblem(field_name, f"message {index}: role {shown} is not system, user or assistant")
        if not isinstance(content, str):
            raise RowProblem(
                field_name, f"message {index}: content must be a string, got {describe(content)}"
            )
        if not content.strip():
            raise RowProblem(field_name, f"message {index}: content is empty")
        if role == "system" and index > 1:
            raise RowProblem(field_name, f"message {index}: only the first message may be a system message")
        # Only role and content: they are the prompt's identity (the content hash).
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise RowProblem(
            field_name,
            f"the last message is from the {messages[-1]['role']}; a prompt must end with a user turn",
        )
    return messages


def _is_gold_part(name: str) -> bool:
    return name.startswith(GOLD_PREFIX) and len(name) > len(GOLD_PREFIX)


def _gold(row: dict[str, Any]) -> Any:
    """`gold` as given; with gold_<name> columns, an object: {"answer": gold, "<name>": ...}."""
    gold = _given(row, "gold")
    parts = {
        k[len(GOLD_PREFIX) :]: v for k, v in row.items() if _is_gold_part(k) and _given(row, k) is not None
    }
    if not parts:
        return gold
    if gold is None:
        return parts
    if isinstance(gold, dict):
        return {**gold, **parts}
    return {"answer": gold, **parts}


def _clean(value: Any, field_name: str, depth: int) -> Any:
    """`value` as plain JSON data: numpy/pandas scalars unwrapped, NaN as None, text checked."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        _check_text(value, field_name)
        return value
    if isinstance(value, float):
        # NaN is how pandas and JSON writers say "missing"; float() also unwraps numpy's float64.
        return float(value) if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        raise RowProblem(field_name, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else _key(key, field_name)
            _check_text(name, field_name)
            cleaned[name] = _clean(item, field_name, depth + 1)
        return cleaned
    if isinstance(value, list | tuple):
        return [_clean(item, field_name, depth + 1) for item in value]
    kind = type(value).__name__
    if kind in ("NaTType", "NAType"):  # pandas' missing markers, matched by name to avoid importing pandas
        return None
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy scalars and arrays
        return _clean(value.tolist(), field_name, depth + 1)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise RowProblem(field_name, "binary data cannot be stored as JSON")
    raise RowProblem(field_name, f"a {kind} value cannot be stored as JSON")


def _key(key: Any, field_name: str | None) -> str:
    """An object key as JSON spells it; json.dumps accepts exactly these non-string keys."""
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, int | float):
        return str(key)
    raise RowProblem(field_name, f"a {type(key).__name__} cannot be an object key")


def _check_text(text: str, field_name: str | None) -> None:
    """Reject text DuckDB cannot store: bytes that were not UTF-8, lone surrogates."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if 0xDC80 <= code <= 0xDCFF:  # how surrogateescape keeps an undecodable byte
            raise RowProblem(field_name, f"invalid UTF-8 (byte 0x{code - 0xDC00:02x})") from None
        raise RowProblem(field_name, f"invalid text (lone surrogate \\u{code:04x})") from None


def short(value: str, limit: int = 40) -> str:
    """A quoted, one-line, bounded rendering of user text for an error message."""
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")
