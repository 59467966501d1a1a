"""The practitioner's eval table: means with bootstrap intervals, a paired Δ, context notes and a bar chart."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from common.safe_text import md_text
from evaluate.ratings import bootstrap_ci, paired_delta_ci

log = logging.getLogger(__name__)

METRIC = "Metric (scorer)"
CIRCULAR_MARK = " †"
N_BOOT = 1000
SEED = 0  # fixed, so a reloaded eval prints the very same intervals


@dataclass
class EvalResult:
    """One eval run: per-prompt scores, the formatted table (a DataFrame), the numbers behind it and notes."""

    eval_run_id: int
    variants: list[str]
    reference: str  # the variant the Δ column and the preference row compare against
    prompt_set: str
    config: dict
    created_at: datetime | None
    scores: pd.DataFrame  # prompt_id, variant, scorer, value
    table: pd.DataFrame  # index: metric; columns: variants then the Δ column; cells "mean [low, high]"
    stats: pd.DataFrame  # metric, column, estimate, low, high, n
    notes: list[str] = field(default_factory=list)

    @property
    def delta_column(self) -> str:
        """The Δ column's header, e.g. 'Δ sft+dpo@3 over sft'."""
        return delta_header(self.variants[-1], self.reference)

    @property
    def prompt_ids(self) -> list[int]:
        """The prompts this eval scored, in order."""
        return sorted(int(p) for p in self.scores["prompt_id"].unique())

    def markdown(self) -> str:
        """The table as markdown with its header line and notes (CLI and Eval tab)."""
        return render_markdown(self)


def delta_header(last: str, reference: str) -> str:
    """The Δ column's header."""
    return f"Δ {last} over {reference}"


def _fmt(x: float, decimals: int, sign: bool = False) -> str:
    return f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"


def _cell(est: float, low: float, high: float, n: int, n_all: int, decimals: int, sign: bool = False) -> str:
    if n == 0 or math.isnan(est):
        return "n/a"
    text = f"{_fmt(est, decimals, sign)} [{_fmt(low, decimals, sign)}, {_fmt(high, decimals, sign)}]"
    return text if n == n_all else f"{text} (n={n})"


def summarise(
    scores: pd.DataFrame, variants: list[str], reference: str, scorers: list[dict], *, circular: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(table, stats, notes): mean and bootstrap 95% interval per cell, paired bootstrap Δ last vs reference.

    `scorers` are the run's scorer descriptions ({name, kind, decimals, uses_judge}) in row order; a row without a
    single score (e.g. ROUGE-L on prompts without gold) is left out and named in the notes.
    """
    last = variants[-1]
    delta_col = delta_header(last, reference)
    n_all = int(scores["prompt_id"].nunique()) if len(scores) else 0
    rows, stats, notes = {}, [], []
    for scorer in scorers:
        name, decimals = scorer["name"], int(scorer.get("decimals", 2))
        sub = scores[scores["scorer"] == name]
        wide = sub.pivot_table(
            index="prompt_id", columns="variant", values="value", aggfunc="first", dropna=False
        )
        wide = wide.reindex(columns=variants)
        if wide.notna().sum().sum() == 0:
            notes.append(f"{name}: no scores (left out), e.g. no gold answers in this prompt set")
            continue
        label = name + (CIRCULAR_MARK if circular and scorer.get("uses_judge") else "")
        cells = {}
        for v in variants:
            values = wide[v].dropna().to_numpy(dtype=float)
            est = float(np.mean(values)) if len(values) else math.nan
            low, high = bootstrap_ci(values, n_boot=N_BOOT, seed=SEED)
            stats.append((name, v, est, low, high, len(values)))
            cells[v] = _cell(est, low, high, len(values), n_all, decimals)
        d = paired_delta_ci(wide[last], wide[reference], n_boot=N_BOOT, seed=SEED)
        stats.append((name, delta_col, d.delta, d.low, d.high, d.n))
        cells[delta_col] = _cell(d.delta, d.low, d.high, d.n, n_all, decimals, sign=True)
        rows[label] = cells
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[*variants, delta_col])
    table.index.name = METRIC
    frame = pd.DataFrame(stats, columns=["metric", "column", "estimate", "low", "high", "n"])
    return table, frame, notes


def _escape(text: str) -> str:
    # Cells hold variant names and scorer labels: literal text, pipes included.
    return md_text(text)


def table_markdown(table: pd.DataFrame) -> str:
    """A DataFrame of strings as a GitHub markdown table, the index as the first column."""
    header = [table.index.name or METRIC, *table.columns]
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    for metric, row in table.iterrows():
        # Our own numbers go out as they are; names and labels are escaped.
        lines.append(
            "| " + " | ".join([_escape(metric), *(str(x).replace("|", "\\|") for x in row.tolist())]) + " |"
        )
    return "\n".join(lines)


def header_line(result: EvalResult) -> str:
    """What the table describes: prompts, sampling, judge, interval method."""
    cfg = result.config
    p = cfg.get("params", {})
    n = len(result.prompt_ids)
    sampling = (
        f"t={p.get('temperature')}, top_p={p.get('top_p')}, max_new_tokens={p.get('max_new_tokens')}, "
        f"seed={p.get('seed')}"
    )
    return (
        f"Eval #{result.eval_run_id} · {n} {result.prompt_set} prompts · sampling {sampling} · "
        f"judge: {md_text(cfg.get('judge_label', '?'))} · 95% bootstrap intervals over prompts, Δ paired by prompt"
    )


def render_markdown(result: EvalResult) -> str:
    """Header line, table and notes."""
    parts = [header_line(result), "", table_markdown(result.table)]
    if result.notes:
        parts.append("")
        parts.extend(f"- {note}" for note in result.notes)
    return "\n".join(parts)


# ---- context beside the table ---------------------------------------------------------------------


def circularity_note(info: dict | None) -> str | None:
    """The † note when the eval's judge also produced labels that may have trained an evaluated adapter."""
    if not info:
        return None
    return (
        f"† partly circular: the eval judge ({md_text(info['judge_label'])}) also made {info['labels']} live "
        # A code span shows its content literally once backticks cannot close it early.
        f"preference label(s) (annotator `{str(info['annotator']).replace('`', '')}`) before "
        f"{', '.join(md_text(v) for v in info['variants'])} was registered, so "
        "they may have trained it; rows marked † partly measure agreement with its own labels. "
        "Rule: live labels with source 'judge' by the same judge and model, created before the adapter's variant."
    )


def arena_note(store, last: str, reference: str) -> str:
    """The human arena result of the last variant against the reference, from blind votes."""
    from evaluate.ratings import win_rate

    votes = store.eval_battle_frame()
    pair = votes[votes["left"].isin([last, reference]) & votes["right"].isin([last, reference])]
    if last == reference or pair.empty:
        return f"Human arena (blind votes): no votes between {md_text(last)} and {md_text(reference)} yet (Arena tab)."
    return f"Human arena (blind votes): {md_text(win_rate(pair, last, reference).summary())}."


def agreement_note(store) -> str:
    """Judge–human agreement on the Annotate tab's labels (annotate/stats.py), with the suggestion hidden and shown."""
    from annotate.stats import labelling_stats

    labels = store.label_frame()
    if labels.empty:
        return "Judge–human agreement: no labels yet."
    figures = labelling_stats(labels, store.verdict_frame())["judge_human_agreement"]
    parts = []
    for which, fig in figures.items():
        if fig["n"]:
            kappa = "undefined" if fig["kappa"] is None else f"{fig['kappa']:.2f}"
            parts.append(
                f"{which.replace('_', ' ')}: {100 * fig['accuracy']:.1f}% of {fig['n']} labels (Cohen's κ {kappa})"
            )
    if not parts:
        return "Judge–human agreement: no human labels with a recorded judge suggestion yet."
    return "Judge–human agreement (Annotate tab): " + "; ".join(parts) + "."


# ---- chart ----------------------------------------------------------------------------------------


def chart_figure(result: EvalResult):
    """A matplotlib Figure: one panel per metric, a bar per variant with its 95% interval as error bars."""
    import textwrap

    # A bare Figure renders through Agg without pyplot, so no global backend is switched in the UI process.
    from matplotlib.figure import Figure

    stats = result.stats[result.stats["column"].isin(result.variants)]
    metrics = list(dict.fromkeys(stats["metric"]))
    ncols = min(3, max(1, len(metrics)))
    nrows = max(1, math.ceil(len(metrics) / ncols))
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colors = [f"C{i}" for i in range(len(result.variants))]
    for ax, metric in zip(axes, metrics, strict=False):
        rows = stats[stats["metric"] == metric].set_index("column").reindex(result.variants)
        est = rows["estimate"].to_numpy(dtype=float)
        err = np.vstack([est - rows["low"].to_numpy(dtype=float), rows["high"].to_numpy(dtype=float) - est])
        ax.bar(
            range(len(est)),
            np.nan_to_num(est),
            yerr=np.nan_to_num(np.clip(err, 0, None)),
            color=colors,
            capsize=4,
        )
        ax.set_xticks(range(len(est)), result.variants, rotation=15, fontsize=8)
        ax.set_title("\n".join(textwrap.wrap(metric, 38)), fontsize=9)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    fig.suptitle(f"Eval #{result.eval_run_id}: means with 95% bootstrap intervals", fontsize=10)
    return fig


def write_chart(result: EvalResult, path: str | Path) -> Path:
    """Save the bar chart as a PNG and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chart_figure(result).savefig(path, dpi=100)
    return path


def write_report(result: EvalResult, output_dir: str | Path) -> tuple[Path, Path]:
    """Write eval_<id>.md and eval_<id>.png into `output_dir`; returns both paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"eval_{result.eval_run_id}.md"
    md.write_text(result.markdown() + "\n", encoding="utf-8")
    png = write_chart(result, out / f"eval_{result.eval_run_id}.png")
    log.info("wrote %s and %s", md, png)
    return md, png
