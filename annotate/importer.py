"""Prompt import: read a file or dataset, validate every row, then store it in one transaction."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from common.errors import UserInputError
from common.vocab import Split, values
from store.import_queries import NewPrompt

from .import_limits import ImportLimits
from .import_readers import SUPPORTED, Opened, RowProblem, describe, looks_like_path, open_source
from .import_rows import short, to_prompt

if TYPE_CHECKING:
    from store import Store

log = logging.getLogger(__name__)

MAX_BAD_EXAMPLES = 5
PROGRESS_EVERY = 1_000
# Ends the one line that refuses a file at its first bad row.
SKIP_BAD_HINT = "; --skip-bad skips such rows"

Progress = Callable[[int, int | None], None]

__all__ = [
    "SUPPORTED",
    "ImportReport",
    "ParsedFile",
    "ReadOptions",
    "assign_split",
    "import_prompts",
    "preview_rows",
    "read_prompt_rows",
]


class ReadOptions(TypedDict, total=False):
    """How a source is read (see `read_prompt_rows`); the import functions pass them on as they are."""

    split: str | None
    heldout_percent: float
    seed: int
    skip_bad: bool
    progress: Progress | None
    limits: ImportLimits | None


@dataclass
class ParsedFile:
    """Every valid row of a source, ready to store, plus what was skipped (prompts; preferences subclass it)."""

    source: str
    format: str
    rows: list
    rows_read: int = 0
    skipped_bad: int = 0
    bad_examples: list[str] = field(default_factory=list)
    assigned: int = 0  # rows whose split came from the seed, not from the file
    seed: int = 0
    heldout_percent: float = 10

    def tally(
        self,
        opened: Opened,
        results: Iterable[tuple[int, Any]],
        *,
        skip_bad: bool,
        progress: Progress | None,
        empty: str,
    ) -> None:
        """Read each (row number, row or its one-line error): keep rows, refuse or count bad ones, report progress."""
        for _, result in results:
            self.rows_read += 1
            if isinstance(result, str):
                if not skip_bad:
                    raise UserInputError(result + SKIP_BAD_HINT)
                self.skipped_bad += 1
                if len(self.bad_examples) < MAX_BAD_EXAMPLES:
                    self.bad_examples.append(result)
            else:
                self.keep(result)
            if progress is not None and self.rows_read % PROGRESS_EVERY == 0:
                progress(self.rows_read, opened.total)
        if self.rows_read == 0:
            raise UserInputError(f"{opened.label}: no rows to import ({empty})")
        if progress is not None and self.rows_read % PROGRESS_EVERY:
            progress(self.rows_read, opened.total)
        if self.skipped_bad:
            log.warning(
                "%s: skipped %d bad row(s), e.g. %s", opened.label, self.skipped_bad, self.bad_examples[0]
            )

    def keep(self, result: tuple[Any, bool]) -> None:
        prompt, was_assigned = result
        self.rows.append(prompt)
        self.assigned += was_assigned


@dataclass(frozen=True)
class ImportReport:
    """What an import did, for the CLI line and the Data tab."""

    source: str
    format: str
    rows_read: int
    inserted: int
    duplicates: int
    skipped_bad: int
    bad_examples: list[str]
    by_split: dict[str, int]
    seed: int
    heldout_percent: float

    @staticmethod
    def counted(parsed: ParsedFile, counts: Any) -> dict[str, Any]:
        """The fields every import report takes from the parsed source and the store's counts."""
        from_parse = ("source", "format", "rows_read", "skipped_bad", "seed", "heldout_percent")
        return {
            **{name: getattr(parsed, name) for name in from_parse},
            "inserted": counts.inserted,
            "duplicates": counts.duplicates,
            "bad_examples": list(parsed.bad_examples),
            "by_split": {s: counts.by_split.get(s, 0) for s in values(Split)},
        }

    def splits(self) -> str:
        """`train 279, heldout 61`."""
        return ", ".join(f"{s} {self.by_split.get(s, 0)}" for s in values(Split))

    def summary(self) -> str:
        """One line: `incidents.jsonl: 340 imported (train 279, heldout 61), 0 duplicates, ...`."""
        return (
            f"{self.source}: {self.inserted} imported ({self.splits()}), {self.duplicates} duplicate(s) skipped, "
            f"{self.skipped_bad} bad row(s) skipped"
        )


def assign_split(content_hash: str, *, seed: int, heldout_percent: float) -> str:
    """The split of a prompt whose file names none: a pure function of seed and content."""
    digest = hashlib.sha256(f"{seed}:{content_hash}".encode()).digest()
    return (
        Split.HELDOUT.value
        if int.from_bytes(digest[:8], "big") % 100 < heldout_percent
        else Split.TRAIN.value
    )


def read_prompt_rows(
    source: str,
    *,
    split: str | None = None,
    heldout_percent: float = 10,
    seed: int = 0,
    skip_bad: bool = False,
    progress: Progress | None = None,
    limits: ImportLimits | None = None,
) -> ParsedFile:
    """Parse and validate every row of `source`; a bad row raises one line, or is counted with `skip_bad`."""
    # `split` names a Hugging Face dataset's split (default "train"); for a file it may be train or
    # heldout, and then goes to the rows that name no split of their own (instead of the seed).
    check_split_options(heldout_percent, seed)
    opened, forced = open_prompt_source(source, split, limits)
    parsed = ParsedFile(opened.label, opened.format, [], seed=seed, heldout_percent=heldout_percent)
    parsed.tally(
        opened,
        _prompts(opened, forced, seed, heldout_percent),
        skip_bad=skip_bad,
        progress=progress,
        empty=f"the {_what(opened)} is empty",
    )
    return parsed


def import_prompts(store: Store, source: str, **options: Unpack[ReadOptions]) -> ImportReport:
    """Import prompts from a file or dataset: parse everything first, then write in one transaction."""
    parsed = read_prompt_rows(source, **options)
    counts = store.add_prompts_bulk(parsed.rows, source=parsed.source)
    return logged(ImportReport(**ImportReport.counted(parsed, counts)))


def logged(report: ImportReport) -> ImportReport:
    """The report, after logging its summary line with the split settings."""
    log.info(
        "%s (split seed %d, %s%% held out when unnamed)",
        report.summary(),
        report.seed,
        report.heldout_percent,
    )
    return report


def preview_rows(
    source: str,
    n: int = 5,
    *,
    split: str | None = None,
    heldout_percent: float = 10,
    seed: int = 0,
    limits: ImportLimits | None = None,
) -> list[dict]:
    """The first `n` rows as the import would store them; bad rows show their error instead."""
    check_split_options(heldout_percent, seed)
    opened, forced = open_prompt_source(source, split, limits)
    shown: list[dict] = []
    if n <= 0:
        return shown
    for number, result in _prompts(opened, forced, seed, heldout_percent):
        if isinstance(result, str):
            shown.append({"row": number, "error": result})
        else:
            prompt, _ = result
            shown.append(
                {
                    "row": number,
                    "messages": prompt.messages,
                    "split": prompt.split,
                    "gold": prompt.gold,
                    "meta": prompt.meta,
                }
            )
        if len(shown) >= n:
            break
    return shown


# -- parsing ----------------------------------------------------------------------------------

RowResult = tuple[NewPrompt, bool] | str


def check_split_options(heldout_percent: float, seed: int) -> None:
    """The held-out percent and split seed an importer was given, checked (one line on a bad value)."""
    if isinstance(heldout_percent, bool) or not isinstance(heldout_percent, int | float):
        raise UserInputError(
            f"held-out percent must be a number from 0 to 100, got {describe(heldout_percent)}"
        )
    if not 0 <= heldout_percent <= 100:
        raise UserInputError(f"held-out percent must be from 0 to 100, got {heldout_percent}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserInputError(f"split seed must be an integer, got {describe(seed)}")


def open_prompt_source(
    source: str, split: str | None, limits: ImportLimits | None = None
) -> tuple[Opened, str | None]:
    """Open `source`; also returns the split a file's unlabelled rows get (None: the seed decides)."""
    if split is not None and not isinstance(split, str):
        raise UserInputError(f"split must be a name, got {describe(split)}")
    source = os.fspath(source)
    path = Path(source).expanduser()
    if path.is_file() or (not path.exists() and looks_like_path(source)):
        if split is not None and split not in values(Split):
            raise UserInputError(
                f"{path.name}: a file has no dataset splits; split must be train or heldout, got {split!r}"
            )
        return open_source(source, limits=limits), split
    return open_source(source, dataset_split=split, limits=limits), None


def _what(opened: Opened) -> str:
    return "dataset split" if opened.format == "dataset" else "file"


def _prompts(
    opened: Opened, forced: str | None, seed: int, heldout_percent: float
) -> Iterator[tuple[int, RowResult]]:
    """Each row as (prompt, split was assigned) or as its one-line error."""
    for number, record in opened.records:
        try:
            if isinstance(record, RowProblem):
                raise record
            prompt, assigned = to_prompt(record, forced)
            if assigned:
                chosen = assign_split(prompt.content_hash, seed=seed, heldout_percent=heldout_percent)
                if chosen != prompt.split:
                    prompt = replace(prompt, split=chosen)
        except RowProblem as problem:
            yield number, row_message(opened.label, number, problem)
            continue
        except RecursionError:  # a pathological nesting the depth check did not reach
            yield number, row_message(opened.label, number, RowProblem(None, "nested too deeply"))
            continue
        yield number, (prompt, assigned)


def row_message(label: str, number: int, problem: RowProblem) -> str:
    where = f"{label} row {number}"
    if problem.field is not None:
        where += f", field {short(problem.field)}"
    return f"{where}: {problem.message}"
