"""Labelling statistics as pure functions over the label and verdict frames (pandas in, dict out)."""

from __future__ import annotations

import itertools
import math

import pandas as pd

from common.vocab import Decision, LabelSource, Order, values

JUDGE_PREFIX = "judge:"


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's κ of two raters (scikit-learn); None when undefined (fewer than 2 items or one category)."""
    if len(a) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    if len(set(a) | set(b)) < 2:
        return None
    value = float(cohen_kappa_score(a, b))
    return None if math.isnan(value) else round(value, 4)


def judge_consensus(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per (pair, judge, model, rubric): the suggestion when both orders agree, else 'unsure'."""
    if verdicts.empty:
        return pd.DataFrame(columns=["pair_id", "judge", "model", "rubric_hash", "consensus"])
    keys = ["pair_id", "judge", "model", "rubric_hash"]
    grouped = verdicts.assign(model=verdicts["model"].fillna("")).groupby(keys, dropna=False)
    rows = []
    for key, g in grouped:
        if set(g["position_order"]) != set(values(Order)):
            continue
        winners = set(g["winner"])
        rows.append((*key, winners.pop() if len(winners) == 1 else "unsure"))
    return pd.DataFrame(rows, columns=[*keys, "consensus"])


def agreement(humans: pd.DataFrame) -> dict:
    """Accuracy and κ between human decisions and the suggestion recorded with them."""
    rated = humans[
        humans["suggestion"].notna() & humans["decision"].isin([Decision.A, Decision.B, Decision.TIE])
    ]
    if rated.empty:
        return {"n": 0, "accuracy": None, "kappa": None}
    accuracy = float((rated["decision"] == rated["suggestion"]).mean())
    kappa = cohen_kappa(rated["decision"].tolist(), rated["suggestion"].tolist())
    return {"n": int(len(rated)), "accuracy": round(accuracy, 4), "kappa": kappa}


def inter_annotator(humans: pd.DataFrame) -> dict:
    """κ between human annotators on pairs two of them labelled (every annotator pair pooled)."""
    votes = humans[humans["decision"] != Decision.SKIP]
    left, right = [], []
    for _, g in votes.groupby("pair_id"):
        decisions = g.sort_values("annotator")["decision"].tolist()
        for x, y in itertools.combinations(decisions, 2):
            left.append(x)
            right.append(y)
    return {"overlapping_pairs": len(left), "kappa": cohen_kappa(left, right)}


def labelling_stats(labels: pd.DataFrame, verdicts: pd.DataFrame) -> dict:
    """Everything `stats` and the Data tab show about labels and the judge."""
    humans = labels[labels["source"] == LabelSource.HUMAN]
    out: dict = {
        "labels_by_source": {k: int(v) for k, v in labels["source"].value_counts().sort_index().items()},
        "human_decisions": {k: int(v) for k, v in humans["decision"].value_counts().sort_index().items()},
        "mean_seconds_per_label": (
            round(float(humans["seconds_spent"].dropna().mean()), 2)
            if humans["seconds_spent"].notna().any()
            else None
        ),
        "annotators": sorted(humans["annotator"].unique().tolist()),
    }
    # Judge labels (source 'judge') are never mixed into these human figures.
    shown = humans[humans["suggestion_shown"]]
    hidden = humans[~humans["suggestion_shown"]]
    out["judge_human_agreement"] = {
        "suggestion_shown": agreement(shown),
        "suggestion_hidden": agreement(hidden),
    }
    overridable = shown[shown["suggestion"].notna() & (shown["decision"] != Decision.SKIP)]
    out["override_rate"] = (
        round(float((overridable["decision"] != overridable["suggestion"]).mean()), 4)
        if len(overridable)
        else None
    )
    out["inter_annotator"] = inter_annotator(humans)
    consensus = judge_consensus(verdicts)
    judges = {}
    for (judge, model), g in consensus.groupby(["judge", "model"], dropna=False):
        name = f"{judge}:{model}" if model else judge
        usage = verdicts[(verdicts["judge"] == judge) & (verdicts["model"].fillna("") == (model or ""))]
        n_pairs = len(g)
        tokens_in = int(usage["input_tokens"].fillna(0).sum())
        tokens_out = int(usage["output_tokens"].fillna(0).sum())
        judges[name] = {
            "pairs_judged": n_pairs,
            "position_inconsistency_rate": round(float((g["consensus"] == "unsure").mean()), 4),
            "input_tokens_per_1000_pairs": round(tokens_in / n_pairs * 1000) if n_pairs else 0,
            "output_tokens_per_1000_pairs": round(tokens_out / n_pairs * 1000) if n_pairs else 0,
        }
    out["judges"] = judges
    return out


def format_stats(counts: dict[str, int], stats: dict) -> str:
    """Plain-text report for `launch.py stats`."""
    lines = [f"{k.replace('_', ' '):<20} {v}" for k, v in counts.items()]
    lines.append("")
    lines.append(
        "labels by source     " + (", ".join(f"{k} {v}" for k, v in stats["labels_by_source"].items()) or "-")
    )
    lines.append(
        "human decisions      " + (", ".join(f"{k} {v}" for k, v in stats["human_decisions"].items()) or "-")
    )
    for which, fig in stats["judge_human_agreement"].items():
        lines.append(
            f"judge-human ({which.replace('_', ' ')}): n={fig['n']} accuracy={_fmt(fig['accuracy'])} κ={_fmt(fig['kappa'])}"
        )
    lines.append(f"override rate        {_fmt(stats['override_rate'])}")
    ia = stats["inter_annotator"]
    lines.append(
        f"inter-annotator κ    {_fmt(ia['kappa'])} over {ia['overlapping_pairs']} overlapping label pairs"
    )
    lines.append(f"mean seconds/label   {_fmt(stats['mean_seconds_per_label'])}")
    for name, j in stats["judges"].items():
        lines.append(
            f"judge {name}: {j['pairs_judged']} pairs, position-inconsistent {_fmt(j['position_inconsistency_rate'])}, "
            f"tokens/1000 pairs in {j['input_tokens_per_1000_pairs']} out {j['output_tokens_per_1000_pairs']}"
        )
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def stats_report(store) -> dict:
    """What `launch.py stats` shows: the table counts and the labelling statistics."""
    return {"counts": store.counts(), **labelling_stats(store.label_frame(), store.verdict_frame())}
