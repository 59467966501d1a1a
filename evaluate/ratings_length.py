"""Response lengths per variant and a length-controlled win rate in the style of AlpacaEval 2.0."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.vocab import RatingTies, Vote
from evaluate.ratings_core import RatingsError, _rng, check_ties, check_votes, level, pct, z_value

LENGTH_COLUMNS = ("len_left", "len_right")


@dataclass(frozen=True)
class LengthControlled:
    """Raw and length-controlled win rate of `a` over `b`, with what the length regression found."""

    a: str
    b: str
    n: int  # rated votes between a and b
    ties_policy: str
    raw_rate: float | None
    lc_rate: float | None  # predicted P(a wins) at zero length difference
    low: float  # bootstrap interval of lc_rate (NaN without a bootstrap)
    high: float
    length_coef: float  # logistic slope on tanh(length difference / its sd); > 0: longer answers win
    len_diff_sd: float
    mean_len_a: float
    mean_len_b: float
    note: str = ""  # why the regression was skipped or degenerate, if it was
    alpha: float = 0.05

    def summary(self) -> str:
        """E.g. 'sft+dpo vs sft: raw 81.0%, length-controlled 52.3% (95% CI 41.0–63.2%, n=200); ...'."""
        if self.n == 0:
            return f"{self.a} vs {self.b}: no rated votes with lengths yet"
        ci = (
            ""
            if math.isnan(self.low)
            else f"{level(self.alpha)} CI {100 * self.low:.1f}–{100 * self.high:.1f}%, "
        )
        ratio = f"; mean length {self.mean_len_a:.0f} vs {self.mean_len_b:.0f}" if self.mean_len_b else ""
        note = f" [{self.note}]" if self.note else ""
        return (
            f"{self.a} vs {self.b}: raw {pct(self.raw_rate)}, length-controlled {pct(self.lc_rate)} "
            f"({ci}n={self.n}){ratio}{note}"
        )


def _design(d: np.ndarray, wt: np.ndarray) -> tuple[np.ndarray, float]:
    """Feature tanh(d / sd(d)) (0 when lengths never differ) and the sd used."""
    sd = float(np.sqrt(np.average((d - np.average(d, weights=wt)) ** 2, weights=wt))) if wt.sum() else 0.0
    return (np.tanh(d / sd) if sd > 0 else np.zeros_like(d)), sd


def _logistic(x: np.ndarray, y: np.ndarray, wt: np.ndarray, c: float) -> tuple[float, float]:
    """(β0, β1) minimising C·Σ wt·logloss + β1²/2: scikit-learn's L2 LogisticRegression objective.

    Solved by Newton's method with backtracking (two parameters), because the bootstrap refits it
    hundreds of times and LogisticRegression costs ~15 ms a fit; a test pins it to scikit-learn.
    """
    design = np.column_stack([np.ones_like(x), x])
    penalty = np.array([0.0, 1.0])

    def loss(beta: np.ndarray) -> float:
        eta = design @ beta
        return float(c * (wt * (np.logaddexp(0, eta) - y * eta)).sum() + 0.5 * beta[1] ** 2)

    beta = np.zeros(2)
    f = loss(beta)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(design @ beta)))
        grad = c * design.T @ (wt * (p - y)) + penalty * beta
        if np.abs(grad).max() < 1e-9 * max(1.0, c * wt.sum()):
            break
        hess = c * (design.T * (wt * p * (1 - p))) @ design + np.diag(penalty)
        step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)
        t = 1.0
        while t > 1e-10 and (new := loss(beta - t * step)) > f:
            t /= 2
        beta, f = beta - t * step, new
    return float(beta[0]), float(beta[1])


def _fit_lc(d: np.ndarray, y: np.ndarray, wt: np.ndarray, c: float) -> tuple[float, float, float, str]:
    """(lc_rate, slope, sd, note) from a weighted logistic regression of y on tanh(d / sd)."""
    x, sd = _design(d, wt)
    if len(set(y[wt > 0])) < 2:
        # One outcome only: the logistic MLE is at infinity; the observed rate is the honest answer.
        return float(np.average(y, weights=wt)), 0.0, sd, "one outcome only, no regression"
    if sd == 0:
        return float(np.average(y, weights=wt)), 0.0, sd, "lengths never differ, LC = raw"
    intercept, slope = _logistic(x, y, wt, c)
    return float(1 / (1 + math.exp(-intercept))), slope, sd, ""


def length_controlled_win_rate(
    votes_with_lengths: pd.DataFrame,
    a: str,
    b: str,
    *,
    ties: str = RatingTies.HALF.value,
    n_boot: int = 200,
    seed: int | np.random.Generator = 0,
    alpha: float = 0.05,
    C: float = 1.0,
) -> LengthControlled:
    """Win rate of `a` over `b` with the length difference regressed out, beside the raw rate.

    As AlpacaEval's LC win rate: fit logit P(a wins) = β0 + β1·tanh((len_a − len_b) / sd), sd the
    standard deviation of the differences (tanh bounds the pull of outliers; the difference is not
    centred, so 0 still means equal lengths), then report σ(β0), the predicted rate at equal length.
    The fit minimises scikit-learn's LogisticRegression objective (L2 penalty on β1 only, the
    intercept unpenalised, C=1 by default; solved in-house for bootstrap speed), which keeps β1 finite when length separates the outcomes perfectly. Ties: "half" enters
    a tie as half a win plus half a loss (sample weights), "exclude" drops it, "loss" counts it as a
    loss; both-bad votes are dropped. With one outcome only no regression is fitted and the LC rate
    is the raw rate (noted). The interval is a percentile bootstrap over votes (`n_boot=0` skips it).
    Lengths are in whatever unit the columns hold (tokens or characters).
    """
    check_ties(ties)
    check_votes(votes_with_lengths, LENGTH_COLUMNS)
    if a == b:
        raise RatingsError(f"length_controlled_win_rate needs two different variants; got {a!r} twice")
    z_value(alpha)
    v = votes_with_lengths
    pair = v[((v["left"] == a) & (v["right"] == b)) | ((v["left"] == b) & (v["right"] == a))]
    pair = pair[pair["vote"] != Vote.BOTH_BAD]
    if ties == RatingTies.EXCLUDE:
        pair = pair[pair["vote"] != Vote.TIE]
    pair = pair.dropna(subset=list(LENGTH_COLUMNS))
    a_left = (pair["left"] == a).to_numpy()
    vote = pair["vote"].to_numpy()
    len_left = pair["len_left"].to_numpy(dtype=float)
    len_right = pair["len_right"].to_numpy(dtype=float)
    len_a, len_b = np.where(a_left, len_left, len_right), np.where(a_left, len_right, len_left)
    a_won = np.where(a_left, vote == Vote.LEFT, vote == Vote.RIGHT).astype(float)
    n = len(pair)
    mean_a = float(len_a.mean()) if n else math.nan
    mean_b = float(len_b.mean()) if n else math.nan
    if n == 0:
        return LengthControlled(
            a, b, 0, ties, None, None, math.nan, math.nan, 0.0, 0.0, mean_a, mean_b, "", alpha
        )

    # One row per vote; under "half" a tie becomes two rows (a won / a lost) of weight 0.5 each.
    tie = vote == Vote.TIE
    d = len_a - len_b
    if ties == RatingTies.HALF:
        rows = np.concatenate([np.arange(n), np.flatnonzero(tie)])
        y = np.concatenate([np.where(tie, 1.0, a_won), np.zeros(tie.sum())])
        wt = np.concatenate([np.where(tie, 0.5, 1.0), np.full(tie.sum(), 0.5)])
    else:
        rows, y, wt = np.arange(n), a_won, np.ones(n)
    raw = float(np.average(y, weights=wt))
    lc, coef, sd, note = _fit_lc(d[rows], y, wt, C)

    low = high = math.nan
    if n_boot > 0:
        rng = _rng(seed)
        boots = np.full(n_boot, np.nan)
        for r in range(n_boot):
            # Resample votes (not rows), so a tie's two halves stay together.
            counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
            boots[r] = _fit_lc(d[rows], y, wt * counts[rows], C)[0]
        low, high = (float(q) for q in np.nanquantile(boots, [alpha / 2, 1 - alpha / 2]))
    return LengthControlled(a, b, n, ties, raw, lc, low, high, coef, sd, mean_a, mean_b, note, alpha)


def mean_lengths(df: pd.DataFrame) -> dict[str, float]:
    """Mean response length per variant, from battle rows (left, right, len_left, len_right) or (variant, length).

    From battles, every appearance counts, so a response shown in several battles weighs more.
    """
    if {"variant", "length"} <= set(df.columns):
        long = df[["variant", "length"]]
    elif {"left", "right", *LENGTH_COLUMNS} <= set(df.columns):
        long = pd.concat(
            [
                df[["left", "len_left"]].set_axis(["variant", "length"], axis=1),
                df[["right", "len_right"]].set_axis(["variant", "length"], axis=1),
            ],
            ignore_index=True,
        )
    else:
        raise RatingsError(
            f"mean_lengths needs columns left, right, len_left, len_right or variant, length; got {list(df.columns)}"
        )
    means = long.dropna().groupby("variant")["length"].mean()
    return {str(k): float(val) for k, val in means.items()}
