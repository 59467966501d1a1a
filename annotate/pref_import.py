"""Preference import: detect the format, validate every row, then store pairs and labels in one transaction."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Unpack

from common.errors import UserInputError
from store.data_queries import NewPreference
from store.queries import content_hash

from .import_limits import ImportLimits
from .import_readers import Opened, RowProblem
from .importer import (
    ImportReport,
    ParsedFile,
    ReadOptions,
    assign_split,
    check_split_options,
    logged,
    open_prompt_source,
    row_message,
)
from .pref_formats import FORMATS, detect_format, parse_row

if TYPE_CHECKING:
    from store import Store

log = logging.getLogger(__name__)

DETECT_ROWS = 20

__all__ = [
    "FORMATS",
    "PrefImportReport",
    "Preview",
    "import_preferences",
    "preview_preferences",
    "read_preference_rows",
]


@dataclass
class ParsedPreferences(ParsedFile):
    """Every valid row of a source as preferences (NewPreference) to store, plus what was skipped."""

    detected: str = ""  # why this format: "forced with --format", or what detection saw
    empty_responses: int = 0  # empty chosen or rejected texts, kept: an empty reply is data
    diverged: int = 0  # HH-RLHF rows whose conversations part before the final turn

    def keep(self, result: tuple[Any, bool]) -> None:
        row, diverged = result
        self.rows.append(row)
        self.empty_responses += (not row.chosen.strip()) + (not row.rejected.strip())
        self.diverged += diverged


@dataclass(frozen=True)
class PrefImportReport(ImportReport):
    """What a preference import did, for the CLI line and the Data tab."""

    detected: str = ""
    model: str = ""
    new_prompts: int = 0
    empty_responses: int = 0
    diverged: int = 0

    def summary(self) -> str:
        """One line: `hh.jsonl (hh-rlhf): 120 pairs imported (train 108, heldout 12), ...`."""
        line = (
            f"{self.source} ({self.format}): {self.inserted} pair(s) imported ({self.splits()}; "
            f"{self.new_prompts} new prompt(s)), {self.duplicates} duplicate(s) skipped, "
            f"{self.skipped_bad} bad row(s) skipped"
        )
        if self.empty_responses:
            line += f"; {self.empty_responses} empty response(s) kept"
        if self.diverged:
            line += (
                f"; {self.diverged} row(s) part before the final turn "
                "(each response is the rest of its conversation)"
            )
        return line


@dataclass(frozen=True)
class Preview:
    """The format an import would use, why, and its first rows as they would be stored."""

    source: str
    format: str
    detected: str
    rows: list[dict]

    def text(self, width: int = 80) -> str:
        """A few plain lines for the terminal."""
        lines = [f"{self.source}: format {self.format} ({self.detected})"]
        for row in self.rows:
            if "error" in row:
                lines.append(f"  row {row['row']}: {row['error']}")
                continue
            prompt = row["prompt"][-1]["content"] if row.get("prompt") else ""
            lines.append(
                f"  row {row['row']}: prompt {_clip(prompt, width)} ({len(row['prompt'])} message(s)) | "
                f"chosen {_clip(row['chosen'], width // 2)} | rejected {_clip(row['rejected'], width // 2)}"
            )
        return "\n".join(lines)


def _clip(text: str, n: int) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= n else flat[: n - 3] + "...")


def read_preference_rows(
    source: str, *, format: str = "auto", **options: Unpack[ReadOptions]
) -> ParsedPreferences:
    """Parse and validate every row; a bad row raises one line naming file, row and field, or is counted.

    `format` is auto (detected from the first rows) or one of FORMATS; `options` as `read_prompt_rows`'.
    """
    seed, heldout_percent = options.get("seed", 0), options.get("heldout_percent", 10)
    _check_options(format, heldout_percent, seed)
    opened, forced_split = open_prompt_source(source, options.get("split"), options.get("limits"))
    fmt, detected, records = _format(opened, format)
    if fmt == "prompts":
        raise UserInputError(
            f"{opened.label}: rows hold prompts only ({detected}); import them with --format prompts"
        )
    parsed = ParsedPreferences(
        opened.label, fmt, [], detected=detected, seed=seed, heldout_percent=heldout_percent
    )
    results = (
        (number, _result(record, fmt, opened.label, number, forced_split, seed, heldout_percent))
        for number, record in records
    )
    parsed.tally(
        opened,
        results,
        skip_bad=options.get("skip_bad", False),
        progress=options.get("progress"),
        empty="it is empty",
    )
    if parsed.empty_responses:
        log.info("%s: kept %d empty response(s)", opened.label, parsed.empty_responses)
    return parsed


def import_preferences(
    store: Store, source: str, *, format: str = "auto", **options: Unpack[ReadOptions]
) -> PrefImportReport:
    """Import a preference file or dataset: parse everything first, then write it in one transaction."""
    parsed = read_preference_rows(source, format=format, **options)
    # The annotator is the dataset: its labels stay apart from every person's in stats and the queue.
    counts = store.add_preferences_bulk(parsed.rows, source=parsed.source, annotator=parsed.source)
    report = PrefImportReport(
        **ImportReport.counted(parsed, counts),
        detected=parsed.detected,
        model=counts.model,
        new_prompts=counts.new_prompts,
        empty_responses=parsed.empty_responses,
        diverged=parsed.diverged,
    )
    logged(report)
    return report


def preview_preferences(
    source: str,
    n: int = 5,
    *,
    format: str = "auto",
    split: str | None = None,
    limits: ImportLimits | None = None,
) -> Preview:
    """The detected (or forced) format and the first `n` rows as the import would read them."""
    _check_options(format, 10, 0)
    opened, _ = open_prompt_source(source, split, limits)
    fmt, detected, records = _format(opened, format)
    rows: list[dict] = []
    if fmt == "prompts":
        return Preview(opened.label, fmt, detected, rows)
    for number, record in itertools.islice(records, max(n, 0)):
        try:
            if isinstance(record, RowProblem):
                raise record
            pref = parse_row(record, fmt)
        except RowProblem as problem:
            rows.append({"row": number, "error": row_message(opened.label, number, problem)})
            continue
        rows.append(
            {
                "row": number,
                "prompt": pref.messages,
                "chosen": pref.chosen,
                "rejected": pref.rejected,
                "split": pref.split,
                "score_chosen": pref.score_chosen,
                "score_rejected": pref.score_rejected,
            }
        )
    return Preview(opened.label, fmt, detected, rows)


# -- internals --------------------------------------------------------------------------------


def _check_options(format: str, heldout_percent: float, seed: int) -> None:
    if format not in ("auto", *FORMATS):
        raise UserInputError(f"--format must be auto or one of {', '.join(FORMATS)}; got {format!r}")
    check_split_options(heldout_percent, seed)


def _format(opened: Opened, forced: str) -> tuple[str, str, Iterator]:
    """The format to use, why, and the records (the rows read for detection are put back in front)."""
    if forced != "auto":
        return forced, "forced with --format", opened.records
    head = list(itertools.islice(opened.records, DETECT_ROWS))
    if not head:
        raise UserInputError(f"{opened.label}: no rows to import (it is empty)")
    fmt, why = detect_format([r for _, r in head if isinstance(r, dict)], opened.label)
    log.info("%s: detected format %s (%s)", opened.label, fmt, why)
    return fmt, f"detected: {why}", itertools.chain(head, opened.records)


def _result(
    record: Any,
    fmt: str,
    label: str,
    number: int,
    forced_split: str | None,
    seed: int,
    heldout_percent: float,
) -> tuple[NewPreference, bool] | str:
    """A row as (preference, conversations diverged) or as its one-line error."""
    try:
        return _to_new(record, fmt, label, number, forced_split, seed, heldout_percent)
    except RowProblem as problem:
        return row_message(label, number, problem)


def _to_new(
    record, fmt: str, label: str, number: int, forced_split: str | None, seed: int, heldout_percent: float
) -> tuple[NewPreference, bool]:
    if isinstance(record, RowProblem):
        raise record
    try:
        pref = parse_row(record, fmt)
    except RecursionError:  # a pathological nesting the depth check did not reach
        raise RowProblem(None, "nested too deeply") from None
    split = pref.split or forced_split
    if split is None:
        # The same pure function of seed and content as the prompt importer: a prompt lands in the same split.
        split = assign_split(content_hash(pref.messages), seed=seed, heldout_percent=heldout_percent)
    new = NewPreference(
        messages=pref.messages,
        split=split,
        chosen=pref.chosen,
        rejected=pref.rejected,
        chosen_params=_params(label, number, pref.score_chosen),
        rejected_params=_params(label, number, pref.score_rejected),
        meta=pref.meta,
    )
    return new, pref.diverged


def _params(label: str, number: int, score: float | None) -> dict:
    """What stands in for generation settings on an imported response: where it came from, its score."""
    params: dict = {"imported_from": label, "row": number}
    if score is not None:
        params["score"] = score
    return params
