"""Export confirmed triples as TRL conversational preference data (JSONL or Parquet) with provenance columns."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import UserInputError
from common.flags import setting
from common.settings import store_secret
from common.vocab import JUDGE_WINNERS, PREFERENCES, ExportTies, LabelSource, Split, values

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from store import Store

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("jsonl", "parquet")
AGREEMENT = ("any", "agree", "disagree")
TIE_POLICIES = values(ExportTies)
LABEL_SOURCES = values(LabelSource)

# What each exported column means; the dataset card's column table is built from this.
COLUMNS: dict[str, str] = {
    "prompt": "the prompt as chat messages",
    "chosen": "the preferred response, as one assistant message (an annotator's edit when `edited`)",
    "rejected": "the other response, as one assistant message",
    "pair_id": "PrefLab pair id",
    "label_id": "PrefLab label id",
    "prompt_id": "PrefLab prompt id",
    "split": "train or heldout (the prompt's split)",
    "source": "who labelled: human, judge (an accepted judge verdict) or import (from a dataset)",
    "annotator": "the annotator's name, `judge:<name>`, or the imported dataset's name",
    "decision": "a: gen_a preferred, b: gen_b preferred, tie, both_bad",
    "edited": "the chosen text is the annotator's rewrite",
    "suggestion_shown": "the judge's suggestion was on screen when the human voted",
    "suggestion": "the judge's suggestion recorded with the label (a/b/tie/both_bad), if any",
    "override": "the human decided against the suggestion shown (null: none shown)",
    "judge": "the judge whose newest verdicts are given (`name:model`)",
    "judge_rubric": "hash of the judge's rubric",
    "judge_verdict": "the judge's verdict in both orders: a/b/tie/both_bad, unsure when the orders disagree",
    "judge_rationale": "the judge's rationale from the order that showed gen_a first",
    "chosen_model": "the variant (or `imported:<dataset>`) that wrote the chosen response",
    "rejected_model": "the variant that wrote the rejected response",
    "chosen_params": "generation settings of the chosen response (JSON text)",
    "rejected_params": "generation settings of the rejected response (JSON text)",
    "labelled_at": "when the label was stored (ISO 8601, the database clock)",
}


@dataclass(frozen=True)
class ExportFilters:
    """Which confirmed labels go out; ties and both-bad are dropped unless kept explicitly."""

    sources: tuple[str, ...] = setting((), "label sources to keep (default: all)", choices=LABEL_SOURCES)
    annotators: tuple[str, ...] = setting((), "annotators to keep (default: all)")
    since: date | None = setting(None, "labels stored on or after this day")
    until: date | None = setting(None, "labels stored on or before this day")
    agreement: str = setting("any", "any, agree or disagree with the judge", choices=AGREEMENT)
    ties: str = setting(ExportTies.DROP.value, "drop or keep tie and both-bad labels", choices=TIE_POLICIES)
    split: str | None = setting(None, "only this prompt split")

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "annotators", tuple(self.annotators))
        for source in self.sources:
            if source not in LABEL_SOURCES:
                raise UserInputError(f"source must be one of {', '.join(LabelSource)}; got {source!r}")
        for name in ("since", "until"):
            object.__setattr__(self, name, _day(name, getattr(self, name)))
        if self.since and self.until and self.since > self.until:
            raise UserInputError(f"since ({self.since}) is after until ({self.until})")
        if self.agreement not in AGREEMENT:
            raise UserInputError(f"agreement must be one of {', '.join(AGREEMENT)}; got {self.agreement!r}")
        if self.ties not in TIE_POLICIES:
            raise UserInputError(f"ties must be drop or keep; got {self.ties!r}")
        if self.split is not None and self.split not in values(Split):
            raise UserInputError(f"split must be train or heldout; got {self.split!r}")

    def describe(self) -> str:
        """The filters in words, for the CLI and the dataset card."""
        parts = ["confirmed labels only (no skips, no superseded votes)"]
        if self.sources:
            parts.append("sources " + ", ".join(self.sources))
        if self.annotators:
            parts.append("annotators " + ", ".join(self.annotators))
        if self.since or self.until:
            parts.append(f"labelled {self.since or '…'} to {self.until or '…'}")
        if self.agreement != "any":
            parts.append(f"only labels that {self.agreement} with the judge")
        if self.split:
            parts.append(f"{self.split} split only")
        parts.append(
            "ties and both-bad dropped" if self.ties == ExportTies.DROP else "ties and both-bad kept"
        )
        return "; ".join(parts)


def _day(name: str, value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise UserInputError(f"{name} must be a date like 2025-01-31; got {value!r}") from None


@dataclass(frozen=True)
class Selection:
    """The exported rows and what the filters left out."""

    records: list[dict]
    total: int  # confirmed triples before filtering
    dropped: dict[str, int]  # reason -> rows
    frame: Any = field(default=None, repr=False)  # the filtered provenance frame (pandas), for cards

    @property
    def by_split(self) -> dict[str, int]:
        return {s: sum(1 for r in self.records if r["split"] == s) for s in values(Split)}


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote."""

    path: Path
    format: str
    rows: int
    by_split: dict[str, int]
    dropped: dict[str, int]

    def summary(self) -> str:
        splits = ", ".join(f"{s} {n}" for s, n in self.by_split.items())
        dropped = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n) or "none"
        return f"wrote {self.rows} triple(s) ({splits}) to {self.path} as {self.format}; left out: {dropped}"


# -- selection (pure over the provenance frame) -----------------------------------------------


def filter_frame(frame: pd.DataFrame, filters: ExportFilters) -> tuple[pd.DataFrame, dict[str, int]]:
    """Apply the filters to `Store.export_frame()`; returns the kept rows and counts per reason left out."""
    dropped: dict[str, int] = {}

    def keep(mask, reason: str):
        nonlocal frame
        dropped[reason] = dropped.get(reason, 0) + int((~mask).sum())
        frame = frame[mask]

    if filters.sources:
        keep(frame["source"].isin(filters.sources), "other sources")
    if filters.annotators:
        keep(frame["annotator"].isin(filters.annotators), "other annotators")
    if filters.split:
        keep(frame["split"] == filters.split, "other split")
    if filters.since or filters.until:
        days = frame["created_at"].dt.date
        mask = days.notna()
        if filters.since:
            mask &= days >= filters.since
        if filters.until:
            mask &= days <= filters.until
        keep(mask, "outside the dates")
    if filters.agreement != "any":
        verdict = frame["judge_verdict"]
        judged = verdict.isin(JUDGE_WINNERS)
        same = judged & (verdict == frame["decision"])
        keep(
            same if filters.agreement == "agree" else judged & ~same,
            f"not {filters.agreement}ing with the judge",
        )
    if filters.ties == ExportTies.DROP:
        keep(frame["decision"].isin(PREFERENCES), "ties/both-bad")
    return frame, dropped


def select(
    store: Store,
    filters: ExportFilters | None = None,
    *,
    real_names: bool = False,
    secret: bytes | None = None,
) -> Selection:
    """The confirmed triples the filters keep, as export records; people's logins pseudonymised unless `real_names`."""
    filters = filters or ExportFilters()
    frame = store.export_frame()
    kept, dropped = filter_frame(frame, filters)  # filters name logins, so they run before the pseudonyms
    if not real_names:
        kept = pseudonymised(kept, secret if secret is not None else store_secret(store))
    return Selection(to_records(kept), len(frame), dropped, kept)


# -- pseudonyms -------------------------------------------------------------------------------


def pseudonym(secret: bytes, login: str) -> str:
    """A stable stand-in for a person's login: an HMAC under the install secret, so no one can reverse it."""
    digest = hmac.new(secret, f"annotator:{login}".encode(), hashlib.sha256).hexdigest()
    return f"annotator-{digest[:12]}"


def pseudonymised(frame: pd.DataFrame, secret: bytes) -> pd.DataFrame:
    """`frame` with human annotators' logins replaced; judges and imported datasets are not people."""
    if frame.empty:
        return frame
    frame = frame.copy()
    human = frame["source"] == LabelSource.HUMAN
    frame.loc[human, "annotator"] = [pseudonym(secret, str(a)) for a in frame.loc[human, "annotator"]]
    return frame


def to_records(frame: pd.DataFrame) -> list[dict]:
    """Provenance rows as TRL conversational preference records (column order as COLUMNS)."""
    records = []
    for row in frame.itertuples(index=False):
        suggestion = _none(row.suggestion)
        shown = bool(row.suggestion_shown)
        judge = _none(row.judge)
        if judge is not None and _none(row.judge_model):
            judge = f"{judge}:{row.judge_model}"
        record = {
            "prompt": [{"role": m["role"], "content": m["content"]} for m in row.prompt],
            "chosen": [{"role": "assistant", "content": row.chosen}],
            "rejected": [{"role": "assistant", "content": row.rejected}],
            "pair_id": int(row.pair_id),
            "label_id": int(row.label_id),
            "prompt_id": int(row.prompt_id),
            "split": row.split,
            "source": row.source,
            "annotator": row.annotator,
            "decision": row.decision,
            "edited": bool(row.edited),
            "suggestion_shown": shown,
            "suggestion": suggestion,
            "override": (row.decision != suggestion) if shown and suggestion is not None else None,
            "judge": judge,
            "judge_rubric": _none(row.judge_rubric),
            "judge_verdict": _none(row.judge_verdict),
            "judge_rationale": _none(row.judge_rationale),
            "chosen_model": row.chosen_model,
            "rejected_model": row.rejected_model,
            "chosen_params": _params(row.chosen_params, row.chosen_seed),
            "rejected_params": _params(row.rejected_params, row.rejected_seed),
            "labelled_at": _iso(row.created_at),
        }
        records.append(record)
    return records


def _none(value: Any) -> Any:
    """pandas' missing markers (None, NaN, NA) as None."""
    if value is None:
        return None
    try:
        import pandas as pd

        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # lists and dicts are never missing
        return value


def _params(params: Any, seed: Any) -> str | None:
    """Generation settings as JSON text: a fixed column type whatever keys each generator recorded."""
    out = dict(params) if isinstance(params, dict) else {}
    if _none(seed) is not None:
        out["seed"] = int(seed)
    return json.dumps(out, sort_keys=True, ensure_ascii=False) if out else None


def _iso(value: Any) -> str | None:
    value = _none(value)
    return None if value is None else value.isoformat()


# -- writing ----------------------------------------------------------------------------------


def arrow_schema() -> pa.Schema:
    """The Parquet schema: message lists as list<struct<role, content>>, provenance as flat columns."""
    import pyarrow as pa

    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    types = {
        "prompt": message,
        "chosen": message,
        "rejected": message,
        "pair_id": pa.int64(),
        "label_id": pa.int64(),
        "prompt_id": pa.int64(),
        "edited": pa.bool_(),
        "suggestion_shown": pa.bool_(),
        "override": pa.bool_(),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in COLUMNS])


def arrow_table(records: list[dict]) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist(records, schema=arrow_schema())


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_jsonl(records: list[dict], path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    write_atomic(path, write)


def write_parquet(records: list[dict], path: Path) -> None:
    import pyarrow.parquet as pq

    table = arrow_table(records)
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def export_format(output: str | os.PathLike, fmt: str | None) -> str:
    """The format asked for, else the one the file name announces."""
    if fmt:
        if fmt not in EXPORT_FORMATS:
            raise UserInputError(f"--format must be jsonl or parquet; got {fmt!r}")
        return fmt
    name = Path(output).name.lower()
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise UserInputError(
        f"{Path(output).name}: cannot tell the format from the name; pass --format jsonl or parquet"
    )


def export_dataset(
    store: Store,
    output: str | os.PathLike,
    *,
    format: str | None = None,
    filters: ExportFilters | None = None,
    real_names: bool = False,
    secret: bytes | None = None,
) -> ExportReport:
    """Write the filtered triples to one JSONL or Parquet file (atomically); logins pseudonymised unless `real_names`."""
    fmt = export_format(output, format)
    path = Path(output).expanduser()
    if path.is_dir():
        raise UserInputError(f"{path} is a folder; give a file name ending in .{fmt}")
    chosen = select(store, filters, real_names=real_names, secret=secret)
    if not chosen.records:
        raise UserInputError(nothing_to_export(chosen, filters or ExportFilters()))
    (write_jsonl if fmt == "jsonl" else write_parquet)(chosen.records, path)
    report = ExportReport(path, fmt, len(chosen.records), chosen.by_split, chosen.dropped)
    log.info("%s", report.summary())
    return report


def nothing_to_export(chosen: Selection, filters: ExportFilters) -> str:
    """One line saying why an export is empty."""
    if chosen.total == 0:
        return "nothing to export: no confirmed labels yet (label pairs in the Annotate tab, or import some)"
    dropped = ", ".join(f"{n} {why}" for why, n in chosen.dropped.items() if n)
    return f"nothing to export: all {chosen.total} confirmed triple(s) were filtered out ({dropped}; {filters.describe()})"
