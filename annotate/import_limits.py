"""Byte caps on what an import reads: upload size, data after decompression, one line, one text value."""

from __future__ import annotations

import argparse
import io
import re
from dataclasses import dataclass
from typing import IO, Any

from common.errors import UserInputError
from common.flags import Flag, add_flags, given, setting

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# The Data tab's upload limit (Gradio's `max_file_size`); larger files go through `launch.py import`.
MAX_UPLOAD_BYTES = 200 * MiB
# A `.json` file is one document, parsed whole: past this size it must be JSON Lines, which streams.
MAX_JSON_DOCUMENT_BYTES = 64 * MiB
# How much a capped reader pulls from a (decompressing) stream at a time: it stops within one chunk of a cap.
CHUNK = 64 * KiB
# How deep the cell check walks nested values (the row validators refuse deeper ones anyway).
_MAX_DEPTH = 64


@dataclass(frozen=True)
class ImportLimits:
    """Caps an import enforces while it reads, so a small hostile file cannot fill the memory."""

    data_bytes: int = setting(512 * MiB, "cap on bytes read from one file, after decompression")
    line_bytes: int = setting(16 * MiB, "cap on bytes in one JSONL or CSV line")
    cell_bytes: int = setting(1 * MiB, "cap on bytes in one text value (a prompt, a response)")

    def __post_init__(self) -> None:
        for name in ("data_bytes", "line_bytes", "cell_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"{FLAGS[name]} must be a positive number of bytes, got {value!r}")


FLAGS = {"data_bytes": "--max-bytes", "line_bytes": "--max-line-bytes", "cell_bytes": "--max-cell-bytes"}
DEFAULT_LIMITS = ImportLimits()


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The `import` flags that raise the caps (values such as 16M or 1G; `limit_flags_given` parses them)."""
    add_flags(parser, ImportLimits, _limit_flags())


def limit_flags_given(args: argparse.Namespace) -> dict[str, int]:
    """The caps the import flags set, in bytes, by ImportLimits field; a flag not given is left out."""
    return {name: parse_size(value, FLAGS[name]) for name, value in given(args, _limit_flags()).items()}


def _limit_flags() -> list[Flag]:
    return [
        Flag(name, flag, layered=True, metavar="SIZE", type=str, show=size_text)
        for name, flag in FLAGS.items()
    ]


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB}


def parse_size(text: str, flag: str) -> int:
    """`16M`, `512MiB`, `1g` or plain bytes as a number of bytes (binary units); one line if it is not one."""
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise UserInputError(f"{flag} takes a size such as 16M, 512MiB or 1G, got {text!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _UNITS[unit])
    if size < 1:
        raise UserInputError(f"{flag} must be at least one byte, got {text!r}")
    return size


def size_text(n: int) -> str:
    """A byte count as people read it: `1 MiB`, `1.5 GiB`, `812 bytes`."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


class CappedReader(io.RawIOBase):
    """A binary stream that raises one line as soon as more than `cap` bytes came out of `inner`.

    It pulls at most CHUNK bytes per call, so a gzip bomb is decompressed only up to cap + CHUNK bytes.
    """

    def __init__(self, inner: IO[bytes], cap: int, refusal: str) -> None:
        super().__init__()
        self.inner = inner
        self.cap = cap
        self.refusal = refusal
        self.read_so_far = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.inner.read(min(len(view), CHUNK))
        n = len(data)
        view[:n] = data
        self.read_so_far += n
        if self.read_so_far > self.cap:
            raise UserInputError(self.refusal)
        return n


def capped(inner: IO[bytes], cap: int, refusal: str) -> io.BufferedReader:
    """`inner` behind a CappedReader, buffered (so `readline(size)` works)."""
    return io.BufferedReader(CappedReader(inner, cap, refusal), buffer_size=CHUNK)


def data_refusal(label: str, cap: int, *, compressed: bool) -> str:
    what = "after decompression" if compressed else "in the file"
    return (
        f"{label}: more than {size_text(cap)} of data {what}, the import's cap; "
        f"with no server running, `launch.py import {FLAGS['data_bytes']} SIZE` raises it"
    )


def json_refusal(label: str, cap: int) -> str:
    return (
        f"{label}: a JSON file is parsed whole and this one holds more than {size_text(cap)}; "
        "save it as JSON Lines (.jsonl, one object per line), which is read row by row"
    )


def line_refusal(cap: int) -> str:
    return f"a line longer than the {size_text(cap)} cap on one line (raise it with {FLAGS['line_bytes']})"


def text_bytes(value: str) -> int:
    """UTF-8 size of `value`; lone surrogates (undecodable input) count as three bytes."""
    return len(value.encode("utf-8", "surrogatepass"))


def oversized_cell(record: Any, cap: int) -> tuple[str | None, int] | None:
    """(field, size) of the first text value in `record` over `cap` bytes, or None."""
    if isinstance(record, dict):
        for key, value in record.items():
            size = _largest_over(key, cap, 0)
            if size is None:
                size = _largest_over(value, cap, 0)
            if size is not None:
                return (key if isinstance(key, str) else str(key)), size
        return None
    size = _largest_over(record, cap, 0)
    return None if size is None else (None, size)


def cell_refusal(size: int, cap: int) -> str:
    return (
        f"{size_text(size)} of text, over the {size_text(cap)} cap on one value "
        f"(raise it with {FLAGS['cell_bytes']})"
    )


def _largest_over(value: Any, cap: int, depth: int) -> int | None:
    """The size of the first string in `value` over `cap` bytes, or None."""
    if isinstance(value, str):
        # A character is 1 to 4 bytes: only strings in between need encoding to be measured.
        if len(value) > cap:
            return text_bytes(value)
        if len(value) * 4 > cap:
            size = text_bytes(value)
            return size if size > cap else None
        return None
    if isinstance(value, bytes | bytearray):
        return len(value) if len(value) > cap else None
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple):
        items = value
    else:
        return None
    for item in items:
        size = _largest_over(item, cap, depth + 1)
        if size is not None:
            return size
    return None
