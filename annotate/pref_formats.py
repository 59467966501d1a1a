"""Preference rows in the formats people have (TRL, TRL conversational, UltraFeedback, HH-RLHF): parse and detect."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from common.errors import UserInputError

from .import_readers import RowProblem, describe

# The prompt importer's value cleaning (numpy/pandas unwrapping, NaN, invalid UTF-8): one convention for both.
from .import_rows import ROLES, _check_text, _clean, row_split, short

FORMATS = ("trl", "trl-conversational", "ultrafeedback", "hh-rlhf")
# Columns with a meaning; the rest of a row goes to the new prompt's `meta`. UltraFeedback's `messages`
# repeats `chosen`, so it is dropped rather than kept as meta.
KNOWN = ("prompt", "chosen", "rejected", "score_chosen", "score_rejected", "split", "messages")
# An HH-RLHF turn marker: "\n\nHuman: " / "\n\nAssistant: " (the very first may lack the blank line).
_TURN = re.compile(r"(?:\A[ \t\r\n]*|\n\n)(Human|Assistant):[ \t]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


@dataclass(frozen=True)
class Preference:
    """One parsed row: prompt messages, the two responses, scores when the file has them."""

    messages: list[dict]
    chosen: str
    rejected: str
    split: str | None = None
    score_chosen: float | None = None
    score_rejected: float | None = None
    meta: dict | None = None
    diverged: bool = False  # HH-RLHF: the conversations part before their final turn (see `_hh`)


def parse_row(record: dict[str, Any], fmt: str) -> Preference:
    """One raw record as a Preference in format `fmt`; a RowProblem names the field at fault."""
    row = _cleaned(record)
    if row.get("chosen") is not None and row.get("chosen") == row.get("rejected"):
        raise RowProblem("rejected", "identical to chosen: a pair needs two different responses")
    if fmt == "trl":
        prompt = _text(row, "prompt")
        messages = [{"role": "user", "content": prompt}]
        chosen, rejected = _response(row, "chosen"), _response(row, "rejected")
    elif fmt == "hh-rlhf":
        messages, chosen, rejected, diverged = _hh(row)
    elif fmt in ("trl-conversational", "ultrafeedback"):
        messages, chosen, rejected = _conversational(row)
    else:
        raise ValueError(f"unknown preference format {fmt!r}")
    if chosen == rejected:
        raise RowProblem("rejected", "identical to chosen: a pair needs two different responses")
    scores = (None, None)
    if fmt == "ultrafeedback":
        scores = (_score(row, "score_chosen"), _score(row, "score_rejected"))
    meta = {k: v for k, v in row.items() if k not in KNOWN}
    diverged = fmt == "hh-rlhf" and diverged
    return Preference(
        messages, chosen, rejected, row_split(row), *scores, meta=meta or None, diverged=diverged
    )


def guess_format(record: dict[str, Any]) -> str | None:
    """The format one row looks like (`prompts` for prompt-only rows), or None."""
    if not isinstance(record, dict):
        return None
    chosen = record.get("chosen")
    if "rejected" in record and chosen is not None:
        if _message_list(chosen) is not None:
            scored = "score_chosen" in record or "score_rejected" in record
            return "ultrafeedback" if scored else "trl-conversational"
        if isinstance(chosen, str):
            if _looks_hh(chosen):
                return "hh-rlhf"
            return "trl" if "prompt" in record else None
        return None
    if "prompt" in record or "messages" in record:
        return "prompts"
    return None


def detect_format(records: list[dict[str, Any]], label: str) -> tuple[str, str]:
    """(format, why) from the first rows: the format most rows look like."""
    guesses = [g for g in (guess_format(r) for r in records) if g is not None]
    if not guesses:
        columns = sorted({str(k) for r in records if isinstance(r, dict) for k in r})
        # A name with a line break or control character is escaped: the refusal stays one line.
        shown = ", ".join(c if c.isprintable() else repr(c) for c in columns[:12]) or "none"
        raise UserInputError(
            f"{label}: cannot tell the format from columns [{shown}]; expected prompt/chosen/rejected "
            "(trl), chosen/rejected message lists (trl-conversational, ultrafeedback), Human:/Assistant: "
            "strings (hh-rlhf) or prompt/messages (prompts); force one with --format"
        )
    (fmt, n), *_ = Counter(guesses).most_common(1)
    return fmt, f"{n} of the first {len(records)} row(s) look like {fmt}"


# -- fields -----------------------------------------------------------------------------------


def _cleaned(record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in record.items():
        name = str(key)
        _check_text(name, name)
        row[name] = _clean(value, name, 0)
    return row


def _text(row: dict[str, Any], name: str) -> str:
    """A text column that must hold something."""
    value = _response(row, name)
    if not value.strip():
        raise RowProblem(name, "empty")
    return value


def _response(row: dict[str, Any], name: str) -> str:
    """A response column: it must be there and be text, but an empty response is data, not an error."""
    value = row.get(name)
    if value is None:
        raise RowProblem(name, "missing")
    if not isinstance(value, str):
        raise RowProblem(name, f"expected a string, got {describe(value)}")
    return value


def _score(row: dict[str, Any], name: str) -> float | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowProblem(name, "expected a number, got a boolean")
    try:
        number = float(value)  # CSV cells hold numbers as text
    except (TypeError, ValueError):
        shown = short(value) if isinstance(value, str) else describe(value)
        raise RowProblem(name, f"expected a number, got {shown}") from None
    return number if math.isfinite(number) else None


def _message_list(value: Any) -> list | None:
    """`value` as a list of message objects (CSV cells hold it as JSON text), or None."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        return value
    return None


def _messages(row: dict[str, Any], name: str) -> list[dict]:
    raw = row.get(name)
    if raw is None:
        raise RowProblem(name, "missing")
    found = _message_list(raw)
    if found is None:
        raise RowProblem(name, f"expected a list of {{role, content}} messages, got {describe(raw)}")
    found = _clean(found, name, 0)
    out = []
    for index, message in enumerate(found, 1):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            shown = short(role) if isinstance(role, str) else describe(role)
            raise RowProblem(name, f"message {index}: role {shown} is not system, user or assistant")
        if not isinstance(content, str):
            raise RowProblem(name, f"message {index}: content must be a string, got {describe(content)}")
        out.append({"role": role, "content": content})
    return out


def _conversational(row: dict[str, Any]) -> tuple[list[dict], str, str]:
    """Prompt messages plus both replies, with an explicit prompt or the shared prefix as the prompt."""
    chosen, rejected = _messages(row, "chosen"), _messages(row, "rejected")
    explicit = row.get("prompt")
    if isinstance(explicit, str):
        if not explicit.strip():
            raise RowProblem("prompt", "empty")
        explicit = [{"role": "user", "content": explicit}]
    elif explicit is not None:
        explicit = _messages(row, "prompt")
    shared = _common_prefix(chosen, rejected)
    if explicit and chosen[: len(explicit)] == explicit and rejected[: len(explicit)] == explicit:
        prompt, cut, where = explicit, len(explicit), "prompt"  # UltraFeedback: replies repeat the prompt
    elif shared and shared[-1]["role"] == "user":
        # The implicit prompt; also an explicit one that differs from the turns only in whitespace.
        prompt, cut, where = shared, len(shared), "chosen"
    elif explicit:
        prompt, cut, where = explicit, 0, "prompt"
    else:
        raise RowProblem(
            "prompt", "missing: no prompt column, and chosen and rejected share no leading user turn"
        )
    _check_prompt(prompt, where)
    return prompt, _reply(chosen[cut:], "chosen"), _reply(rejected[cut:], "rejected")


def _common_prefix(a: list[dict], b: list[dict]) -> list[dict]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _check_prompt(messages: list[dict], name: str) -> None:
    if not messages:
        raise RowProblem(name, "the prompt has no messages")
    for index, message in enumerate(messages, 1):
        if not message["content"].strip():
            raise RowProblem(name, f"prompt message {index}: content is empty")
        if message["role"] == "system" and index > 1:
            raise RowProblem(name, f"prompt message {index}: only the first message may be a system message")
    if messages[-1]["role"] != "user":
        raise RowProblem(
            name, f"the prompt ends with a {messages[-1]['role']} turn; it must end with a user turn"
        )


def _reply(rest: list[dict], name: str) -> str:
    """The one assistant message left after the prompt (its content may be empty: that is data)."""
    if len(rest) != 1:
        what = "nothing" if not rest else f"{len(rest)} messages"
        raise RowProblem(name, f"after the prompt, expected one assistant message, got {what}")
    message = rest[0]
    if message["role"] != "assistant":
        raise RowProblem(
            name, f"after the prompt, expected an assistant message, got a {message['role']} message"
        )
    return message["content"]


# -- HH-RLHF ----------------------------------------------------------------------------------


def _looks_hh(text: str) -> bool:
    roles = {m.group(1) for m in _TURN.finditer(text)}
    return roles == {"Human", "Assistant"}


def hh_turns(text: str, name: str) -> list[dict]:
    """The turns of one HH-RLHF string as chat messages."""
    marks = list(_TURN.finditer(text))
    if not marks:
        raise RowProblem(name, "no '\\n\\nHuman:' / '\\n\\nAssistant:' turns")
    if text[: marks[0].start()].strip():
        raise RowProblem(name, "text before the first Human:/Assistant: turn")
    turns = []
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following is not None else len(text)
        turns.append({"role": _HH_ROLES[mark.group(1)], "content": text[mark.end() : end].strip()})
    return turns


def _hh(row: dict[str, Any]) -> tuple[list[dict], str, str, bool]:
    """(prompt, chosen, rejected, diverged): the shared turns up to the last shared Human turn are the prompt.

    Usually the two conversations differ only in their final Assistant turn, which is then each response
    (an empty final turn, as the canonical harmless-base split has, is an empty response). When they part
    earlier, the rest of each conversation from the first differing Assistant turn is its response, with
    later turns kept in HH's "\n\nHuman: " / "\n\nAssistant: " markup: what TRL's hh-rlhf script does.
    """
    chosen = hh_turns(_text(row, "chosen"), "chosen")
    rejected = hh_turns(_text(row, "rejected"), "rejected")
    shared = _common_prefix(chosen, rejected)
    cut = len(shared)
    while cut and shared[cut - 1]["role"] != "user":
        cut -= 1  # the prompt ends with a Human turn; an Assistant turn both share belongs to the responses
    if not cut:
        raise RowProblem("chosen", "chosen and rejected share no leading Human turn")
    prompt = chosen[:cut]
    _check_prompt(prompt, "chosen")
    responses = [_hh_rest(turns[cut:], name) for name, turns in (("chosen", chosen), ("rejected", rejected))]
    diverged = len(chosen) != cut + 1 or len(rejected) != cut + 1
    return prompt, *responses, diverged


def _hh_rest(rest: list[dict], name: str) -> str:
    """The response: the first Assistant turn after the prompt, and any later turns in HH markup."""
    if not rest:
        raise RowProblem(name, "no Assistant turn after the last Human turn both conversations share")
    if rest[0]["role"] != "assistant":
        raise RowProblem(name, "after the prompt, expected an Assistant turn, got a second Human turn")
    marker = {"user": "Human", "assistant": "Assistant"}
    later = "".join(f"\n\n{marker[t['role']]}: {t['content']}" for t in rest[1:])
    return rest[0]["content"] + later
