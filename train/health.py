"""Training health: warnings as pure functions over a metrics frame, the final numbers, the run report and plot."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.safe_text import md_text
from common.vocab import MetricSplit

log = logging.getLogger(__name__)

# Defaults of the warnings. KL is per sampled token (nats); reward gaps are beta-scaled, as TRL logs them.
KL_THRESHOLD = 0.1
FLAT_GAP = 0.02
MIN_POINTS = 6
# Panels of the run plot: (title, [(split, metric), ...]).
CURVES = (
    ("reward gap (train)", [(MetricSplit.TRAIN, "rewards/margins")]),
    ("validation reward gap", [(MetricSplit.EVAL, "rewards/margins")]),
    ("KL to reference (nats/token)", [(MetricSplit.TRAIN, "kl")]),
    ("loss", [(MetricSplit.TRAIN, "loss"), (MetricSplit.EVAL, "loss")]),
)


@dataclass(frozen=True)
class HealthWarning:
    """One warning: a stable code for the UI and a sentence for people."""

    code: str
    message: str


def series(frame, split: str, name: str):
    """Values of one metric by step (NaN dropped), as a pandas Series."""
    import pandas as pd

    if frame is None or len(frame) == 0:
        return pd.Series(dtype=float)
    rows = frame[(frame["split"] == split) & (frame["name"] == name)].dropna(subset=["value"])
    return rows.groupby("step")["value"].last().sort_index().astype(float)


def training_warnings(
    frame, *, kl_threshold: float = KL_THRESHOLD, flat_gap: float = FLAT_GAP, min_points: int = MIN_POINTS
) -> list[HealthWarning]:
    """The DPO failure signs visible in a run's metrics (columns step, split, name, value)."""
    warnings = []
    chosen, rejected = (
        series(frame, MetricSplit.TRAIN, "rewards/chosen"),
        series(frame, MetricSplit.TRAIN, "rewards/rejected"),
    )
    if len(chosen) >= min_points and len(rejected) >= min_points:
        late_c, late_r = _late(chosen), _late(rejected)
        if _slope(late_c) < 0 and _slope(late_r) < 0 and late_c.mean() < 0:
            warnings.append(
                HealthWarning(
                    "rewards_falling",
                    f"chosen and rejected rewards are falling together (chosen {chosen.iloc[-1]:+.3f}, rejected "
                    f"{rejected.iloc[-1]:+.3f}): the policy is making both answers less likely; try a lower "
                    "learning rate, a higher beta, or add an SFT term (loss_type sigmoid,sft)",
                )
            )
    kl = series(frame, MetricSplit.TRAIN, "kl")
    if len(kl) >= 2 and kl.iloc[-1] > kl_threshold and kl.iloc[-1] > kl.iloc[:-1].max():
        warnings.append(
            HealthWarning(
                "kl_high",
                f"KL to the reference reached {kl.iloc[-1]:.3f} nats/token (threshold {kl_threshold:g}) and is "
                "still growing: beta may be too low or the learning rate too high",
            )
        )
    gap = series(frame, MetricSplit.TRAIN, "rewards/margins")
    if len(gap) >= min_points and _late(gap).mean() < flat_gap:
        warnings.append(
            HealthWarning(
                "gap_flat",
                f"the reward gap stayed flat (about {_late(gap).mean():+.3f} over the last steps): beta may be too "
                "high, the learning rate too low, or the chosen and rejected answers hard to tell apart",
            )
        )
    val = series(frame, MetricSplit.EVAL, "rewards/margins")
    if len(val) >= 3 and len(gap) >= 2:
        peak_step = val.idxmax()
        peak = val.max()
        tolerance = max(flat_gap, 0.1 * abs(peak))
        before = gap[gap.index <= peak_step]
        # "Growing" = the training gap ends above where it stood when validation peaked.
        train_grew = len(before) > 0 and gap.iloc[-1] > before.iloc[-1]
        if peak_step != val.index[-1] and val.iloc[-1] < peak - tolerance and train_grew:
            warnings.append(
                HealthWarning(
                    "overfitting",
                    f"the validation reward gap fell from {peak:+.3f} (step {int(peak_step)}) to {val.iloc[-1]:+.3f} "
                    "while the training gap kept growing: the adapter is overfitting; use fewer epochs or more data",
                )
            )
    return warnings


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def final_metrics(frame, *, val_pairs: int) -> dict[str, Any]:
    """Last values of the health metrics, with a 95% interval on the validation reward accuracy."""
    result: dict[str, Any] = {}
    for key, split, name in (
        ("loss", MetricSplit.TRAIN, "loss"),
        ("train_margin", MetricSplit.TRAIN, "rewards/margins"),
        ("train_accuracy", MetricSplit.TRAIN, "rewards/accuracies"),
        ("val_loss", MetricSplit.EVAL, "loss"),
        ("val_margin", MetricSplit.EVAL, "rewards/margins"),
        ("val_accuracy", MetricSplit.EVAL, "rewards/accuracies"),
        ("kl", MetricSplit.TRAIN, "kl"),
        ("kl_seq", MetricSplit.TRAIN, "kl_seq"),
    ):
        values = series(frame, split, name)
        if len(values):
            result[key] = float(values.iloc[-1])
    if "val_accuracy" in result and val_pairs:
        # TRL averages per-batch accuracies; with equal batches that is the share of validation pairs ranked right.
        low, high = wilson_interval(result["val_accuracy"] * val_pairs, val_pairs)
        result["val_accuracy_ci"] = [round(low, 4), round(high, 4)]
    return result


def plot_curves(frames: dict[str, Any], path: str | Path) -> Path:
    """Reward gap, validation gap, KL and loss side by side; one line per run (past runs overlay)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.4), constrained_layout=True)
    for ax, (title, lines) in zip(axes, CURVES, strict=True):
        drawn = 0
        for label, frame in frames.items():
            for split, name in lines:
                values = series(frame, split, name)
                if len(values):
                    name_it = label if len(lines) == 1 else f"{label} {split}"
                    ax.plot(
                        values.index, values.values, marker="." if len(values) < 30 else None, label=name_it
                    )
                    drawn += 1
        if "gap" in title:
            ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_title(title)
        ax.set_xlabel("step")
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        elif drawn > 1:
            ax.legend(fontsize="small")
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(path: str | Path, *, run: dict[str, Any], frame, warnings: list[HealthWarning]) -> Path:
    """runs/<id>/report.md: outcome, data snapshot, settings, final numbers, warnings and the curves."""
    path = Path(path)
    curves = path.with_name("curves.png")
    try:
        plot_curves({f"run {run.get('run_id')}": frame}, curves)
        image = f"![curves]({curves.name})"
    except Exception as exc:  # a report without a picture beats no report
        log.warning("could not plot the curves: %s", exc)
        image = f"(no plot: {md_text(exc)})"
    final = run.get("final", {})
    lines = [
        f"# DPO run {run.get('run_id')}: {run.get('status')}",
        "",
        # Names, sources and errors are the user's (or a crash's) text: shown literally, never as Markdown.
        f"- variant: {md_text(run.get('variant'))} -> {md_text(run.get('model') or 'not registered')}",
        f"- data: {run.get('train_pairs')} training + {run.get('val_pairs')} validation triples, "
        f"sources {_fmt_counts(run.get('sources', {}))}; left out: {_fmt_counts(run.get('dropped', {})) or 'none'}",
        f"- snapshot sha256: `{run.get('dataset_hash')}`",
        f"- reference log-probs: {run.get('ref_hits', 0)} cached, {run.get('ref_computed', 0)} computed",
        *(
            [
                f"- truncated at max_length {run.get('max_length')}: {run['truncated_pairs']} of "
                f"{run.get('pairs')} pairs (longest {run.get('longest_pair')} tokens)"
            ]
            if "truncated_pairs" in run
            else []
        ),
        f"- settings: {md_text(run.get('settings'))}",
        f"- steps: {run.get('steps')} of {run.get('total_steps')}, {run.get('seconds_per_step') or '?'} s/step",
    ]
    if run.get("error"):
        lines.append(f"- error: {md_text(run['error'])}")
    lines += ["", "## Final metrics", "", "| metric | value |", "| --- | --- |"]
    for key, value in final.items():
        lines.append(f"| {key} | {_fmt(value)} |")
    lines += ["", "## Warnings", ""]
    lines += [f"- **{w.code}**: {md_text(w.message)}" for w in warnings] or ["- none"]
    lines += [
        "",
        "## Curves",
        "",
        "Reward gap, validation reward gap and KL are read together:",
        "",
        image,
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _late(values):
    """The last half of a series (at least 3 points): the trend after warm-up."""
    return values.iloc[-max(3, len(values) // 2) :]


def _slope(values) -> float:
    import numpy as np

    if len(values) < 2:
        return 0.0
    return float(np.polyfit(values.index.to_numpy(dtype=float), values.to_numpy(dtype=float), 1)[0])


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{md_text(k)} {v}" for k, v in sorted(counts.items()))
