"""Raw records from prompt files (JSONL, JSON, CSV, Parquet) and Hugging Face datasets."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from common.errors import UserInputError
from common.text import first_line

from .import_limits import (
    CHUNK,
    DEFAULT_LIMITS,
    MAX_JSON_DOCUMENT_BYTES,
    ImportLimits,
    capped,
    cell_refusal,
    data_refusal,
    json_refusal,
    line_refusal,
    oversized_cell,
    size_text,
)

log = logging.getLogger(__name__)

# Each kind's file name endings.
FILE_KINDS = {
    "jsonl": (".jsonl.gz", ".ndjson.gz", ".jsonl", ".ndjson"),
    "json": (".json.gz", ".json"),
    "csv": (".csv.gz", ".csv"),
    "parquet": (".parquet", ".pq"),
}
# Longest ending first, so a name takes the most specific one.
_ENDINGS = sorted(((e, kind) for kind, ends in FILE_KINDS.items() for e in ends), key=lambda ek: -len(ek[0]))
SUPPORTED = "JSONL (.jsonl, .jsonl.gz), JSON (.json), CSV (.csv) or Parquet (.parquet)"
# Markers `Dataset.save_to_disk` leaves in a folder; `load_dataset` refuses such folders.
_SAVED_MARKERS = ("dataset_dict.json", "state.json")
_PARQUET_BATCH = 10_000


class RowProblem(Exception):
    """A row that cannot become a prompt; `field` is None when the row as a whole is at fault."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


Record = tuple[int, "dict[str, Any] | RowProblem"]


@dataclass
class Opened:
    """A source ready to read: its label for messages, its format, and its rows (numbered from 1)."""

    label: str
    format: str
    records: Iterator[Record]
    total: int | None = None


def file_kind(path: Path) -> str | None:
    """The format a file name announces, or None."""
    name = path.name.lower()
    return next((kind for ending, kind in _ENDINGS if name.endswith(ending)), None)


def looks_like_path(source: str) -> bool:
    """True when a missing `source` was meant as a file, not a Hub dataset name like `org/name`."""
    if source.startswith(("/", "./", "../", "~", "\\")) or "\\" in source:
        return True
    return file_kind(Path(source)) is not None or Path(source).suffix.lower() in (".txt", ".tsv", ".gz")


def open_source(
    source: str, *, dataset_split: str | None = None, limits: ImportLimits | None = None
) -> Opened:
    """Open a file, a local dataset folder or a Hub dataset name; `dataset_split` applies to datasets.

    Files are read within `limits` while streaming; a text value over the cell cap makes its row bad.
    """
    limits = limits or DEFAULT_LIMITS
    opened = _open(source, dataset_split, limits)
    opened.records = _cells_capped(opened.records, limits.cell_bytes)
    return opened


def _open(source: str, dataset_split: str | None, limits: ImportLimits) -> Opened:
    if not source or not source.strip():
        raise UserInputError("no file or dataset given")
    path = Path(source).expanduser()
    if path.is_dir():
        return _open_dataset(str(path), path.name or str(path), dataset_split, local=True)
    if path.exists():
        kind = file_kind(path)
        if kind is None:
            suffix = "".join(path.suffixes[-2:]) or "(none)"
            raise UserInputError(f"{path.name}: unknown file type {suffix!r}; use {SUPPORTED}")
        return Opened(path.name, kind, _read_file(path, kind, limits))
    if looks_like_path(source):
        raise UserInputError(f"{source}: no such file; give {SUPPORTED}, or a Hugging Face dataset name")
    return _open_dataset(source, source, dataset_split, local=False)


def _cells_capped(records: Iterator[Record], cap: int) -> Iterator[Record]:
    """The records, with a row holding a text value over `cap` bytes turned into that row's problem."""
    for number, record in records:
        if not isinstance(record, RowProblem):
            found = oversized_cell(record, cap)
            if found is not None:
                field_name, size = found
                record = RowProblem(field_name, cell_refusal(size, cap))
        yield number, record


# -- files ------------------------------------------------------------------------------------


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzipped."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _read_file(path: Path, kind: str, limits: ImportLimits) -> Iterator[Record]:
    """Rows of a file, read within `limits`; read errors become one line naming the file."""
    label = path.name
    try:
        if kind == "parquet":
            yield from _parquet(path, label, limits)
            return
        refusal = data_refusal(label, limits.data_bytes, compressed=path.name.lower().endswith(".gz"))
        with _open_binary(path) as raw, capped(raw, limits.data_bytes, refusal) as fh:
            if kind == "jsonl":
                yield from _jsonl(fh, limits.line_bytes)
            elif kind == "json":
                yield from _json(_read_document(fh, label, limits), label, limits.line_bytes)
            else:
                yield from _csv(fh, label, limits.line_bytes)
    except UserInputError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # missing permission, truncated or fake .gz
        raise UserInputError(f"cannot read {label}: {first_line(exc)}") from exc


def _decode(raw: bytes) -> tuple[str, UnicodeDecodeError | None]:
    """Decode strictly; on failure keep the bad bytes as surrogates so the row check can name the field."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", "surrogateescape"), exc


def _bad_utf8(exc: UnicodeDecodeError) -> str:
    return f"invalid UTF-8 (byte 0x{exc.object[exc.start]:02x} at byte {exc.start + 1})"


def _read_document(fh: IO[bytes], label: str, limits: ImportLimits) -> bytes:
    """A whole JSON document, read in chunks up to its cap (never one unbounded read)."""
    cap = min(limits.data_bytes, MAX_JSON_DOCUMENT_BYTES)
    chunks, size = [], 0
    while chunk := fh.read(CHUNK):
        size += len(chunk)
        if size > cap:
            raise UserInputError(json_refusal(label, cap))
        chunks.append(chunk)
    return b"".join(chunks)


def _lines(fh: IO[bytes], cap: int) -> Iterator[tuple[int, bytes | RowProblem]]:
    """Numbered lines of at most `cap` bytes each; a longer one is a RowProblem and is skipped unread."""
    lineno = 0
    while raw := fh.readline(cap + 1):
        lineno += 1
        if len(raw) <= cap or raw.endswith(b"\n"):
            yield lineno, raw
            continue
        yield lineno, RowProblem(None, line_refusal(cap))
        while (rest := fh.readline(CHUNK)) and not rest.endswith(b"\n"):
            pass  # drop the rest of the line a chunk at a time; the data cap still counts it


def _jsonl(fh: IO[bytes], line_cap: int) -> Iterator[Record]:
    for lineno, raw in _lines(fh, line_cap):
        if isinstance(raw, RowProblem):
            yield lineno, raw
            continue
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a BOM some editors write; json.loads rejects it
        if not raw.strip():
            continue
        text, bad = _decode(raw)
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            # Bytes that are not UTF-8 outside a string break the JSON too: name the real cause.
            why = _bad_utf8(bad) if bad else f"not valid JSON ({_json_error(exc)})"
            yield lineno, RowProblem(None, why)
            continue
        yield lineno, _as_object(value)


def _json(raw: bytes, label: str, line_cap: int) -> Iterator[Record]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        return
    text, bad = _decode(raw)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and exc.lineno > 1:
            # One object per line saved as .json: read it as the JSON Lines it is.
            log.info("%s holds one JSON object per line; reading it as JSONL", label)
            yield from _jsonl(io.BytesIO(raw), line_cap)
            return
        why = _bad_utf8(bad) if bad else f"not valid JSON ({exc.msg})"
        raise UserInputError(f"{label} line {exc.lineno}, column {exc.colno}: {why}") from exc
    except (ValueError, RecursionError) as exc:
        raise UserInputError(f"{label}: not valid JSON ({_json_error(exc)})") from exc
    if not isinstance(value, list):
        raise UserInputError(f"{label}: expected a JSON list of objects, got {describe(value)}")
    for index, item in enumerate(value, 1):
        yield index, _as_object(item)


def _csv(fh: IO[bytes], label: str, line_cap: int) -> Iterator[Record]:
    # Prompts are long: the csv module's default 128 KiB cell limit would reject real rows; a quoted
    # cell may span lines, so its limit is the line cap (one value's own cap is checked per row).
    csv.field_size_limit(line_cap)
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def lines() -> Iterator[str]:
        lineno = 0
        while line := text.readline(line_cap + 1):  # characters: never fewer than the bytes / 4
            lineno += 1
            if len(line) > line_cap:
                raise UserInputError(f"{label} line {lineno}: {line_refusal(line_cap)}")
            yield line

    reader = csv.reader(lines())
    row_number = 0
    try:
        header = next(reader, None)
        if header is None:
            return
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise UserInputError(f"{label}: column {name!r} appears twice in the header")
            seen.add(name)
        for row_number, cells in enumerate(reader, 1):
            if not any(cells):
                continue  # a blank line
            if len(cells) > len(header):
                yield (
                    row_number,
                    RowProblem(None, f"{len(cells)} cells, but the header has {len(header)} columns"),
                )
                continue
            yield row_number, dict(zip(header, cells, strict=False))
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            why = f"a cell over the {size_text(line_cap)} cap on one line (raise it with --max-line-bytes)"
        else:
            why = f"malformed CSV ({exc})"
        raise UserInputError(f"{label} row {row_number + 1}: {why}") from exc


def _parquet(path: Path, label: str, limits: ImportLimits) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
        meta = reader.metadata
        # The footer tells the decompressed size before any page is read.
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    except (pa.ArrowException, OSError) as exc:
        raise UserInputError(f"cannot read {label}: {first_line(exc)}") from exc
    if size > limits.data_bytes:
        raise UserInputError(data_refusal(label, limits.data_bytes, compressed=True))
    row_number = 0
    try:
        for batch in reader.iter_batches(batch_size=_PARQUET_BATCH):
            try:
                rows = batch.to_pylist()
            except (UnicodeDecodeError, pa.ArrowException, ValueError):
                rows = None  # some value does not convert: find its row and column below
            for index in range(batch.num_rows):
                row_number += 1
                yield row_number, rows[index] if rows is not None else _parquet_row(batch, index)
    except pa.ArrowException as exc:
        raise UserInputError(f"cannot read {label} near row {row_number + 1}: {first_line(exc)}") from exc


def _parquet_row(batch: Any, index: int) -> dict[str, Any] | RowProblem:
    row: dict[str, Any] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            row[name] = column[index].as_py()
        except UnicodeDecodeError as exc:
            return RowProblem(name, _bad_utf8(exc))
        except Exception as exc:  # noqa: BLE001 - Arrow raises many types for one unreadable value
            return RowProblem(name, f"unreadable value ({first_line(exc)})")
    return row


# -- Hugging Face datasets --------------------------------------------------------------------


def _open_dataset(source: str, label: str, split: str | None, *, local: bool) -> Opened:
    import datasets

    split = split or "train"
    folder = Path(source)
    try:
        if local and any((folder / marker).exists() for marker in _SAVED_MARKERS):
            loaded = datasets.load_from_disk(source)
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise UserInputError(
                        f"dataset {label} has no split {split!r}; it has {', '.join(sorted(loaded))}"
                    )
                loaded = loaded[split]
        else:
            loaded = datasets.load_dataset(source, split=split)
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises anything from ConnectionError to ValueError
        where = "the folder" if local else "the Hub (offline?)"
        raise UserInputError(f"cannot load dataset {label} from {where}: {first_line(exc)}") from exc
    if not isinstance(loaded, datasets.Dataset):
        raise UserInputError(f"dataset {label}: expected one split, got {type(loaded).__name__}")
    return Opened(label, "dataset", _dataset_rows(loaded), total=len(loaded))


def _dataset_rows(ds: Any) -> Iterator[Record]:
    for index, row in enumerate(ds, 1):
        yield index, dict(row)


# -- helpers ----------------------------------------------------------------------------------


def _as_object(value: Any) -> dict[str, Any] | RowProblem:
    if isinstance(value, dict):
        return value
    return RowProblem(None, f"expected a JSON object, got {describe(value)}")


def describe(value: Any) -> str:
    """A short, one-line name for what a value is: 'a string', 'a list', 'null', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _json_error(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return first_line(exc)
