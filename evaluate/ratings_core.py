"""Shared pieces of the rating math: vote validation, tie policies, the Wilson interval, bootstraps."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from common.errors import UserInputError
from common.vocab import RatingTies, Vote, values

VOTES = values(Vote)
TIE_POLICIES = values(RatingTies)
TIE_WORDS = {
    RatingTies.HALF: "ties as half",
    RatingTies.EXCLUDE: "ties excluded",
    RatingTies.LOSS: "ties as losses",
}


class RatingsError(UserInputError, ValueError):
    """Votes or arguments the rating functions cannot work with (a ValueError too, for library callers)."""


def z_value(alpha: float) -> float:
    """The two-sided normal quantile for a (1 - alpha) interval."""
    if not 0 < alpha < 1:
        raise RatingsError(f"alpha must be within (0, 1), got {alpha!r}")
    return NormalDist().inv_cdf(1 - alpha / 2)


def level(alpha: float) -> str:
    """'95%' for alpha=0.05."""
    return f"{100 * (1 - alpha):g}%"


def pct(x: float | None) -> str:
    """A rate as a percentage with one decimal, or 'n/a'."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def check_ties(ties: str, allowed: tuple[str, ...] = TIE_POLICIES) -> None:
    """Reject a tie policy outside `allowed`, naming what was given."""
    if ties not in allowed:
        raise RatingsError(f"ties must be one of {', '.join(allowed)}; got {ties!r}")


def check_votes(votes: pd.DataFrame, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The votes frame with its required columns, rejecting unknown vote values by name."""
    missing = [c for c in ("left", "right", "vote", *extra) if c not in votes.columns]
    if missing:
        raise RatingsError(f"votes lack column(s) {', '.join(missing)}; got {list(votes.columns)}")
    bad = sorted(
        repr(str(v)) if isinstance(v, str) else str(v) for v in set(votes["vote"].unique()) - set(VOTES)
    )
    if bad:
        raise RatingsError(f"unknown vote value(s) {', '.join(bad)}; expected one of {', '.join(VOTES)}")
    return votes


def side_scores(vote: pd.Series, ties: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per vote: the left side's score, the right side's score, and whether the vote is rated at all.

    A decisive vote scores 1/0; a tie 0.5/0.5 ("half"), 0/0 ("loss": neither side wins, but the vote
    still counts in n), or is dropped ("exclude"). Both-bad votes are never rated.
    """
    v = vote.to_numpy()
    left = (v == Vote.LEFT).astype(float)
    right = (v == Vote.RIGHT).astype(float)
    tie = v == Vote.TIE
    if ties == RatingTies.HALF:
        left[tie] = right[tie] = 0.5
    rated = (v == Vote.LEFT) | (v == Vote.RIGHT) | (tie & (ties != RatingTies.EXCLUDE))
    return left, right, rated


def wilson_interval(successes: float, n: float, *, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for successes/n; (0, 1) when n is 0. Successes may be fractional."""
    if n <= 0:
        return 0.0, 1.0
    z = z_value(alpha)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n))
    # Clamp rounding only: the exact interval always lies within [0, 1] and contains p.
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def separates(successes: float, n: float, *, alpha: float = 0.05, null: float = 0.5) -> bool:
    """Whether the Wilson interval for successes/n excludes `null` (strictly)."""
    low, high = wilson_interval(successes, n, alpha=alpha)
    return low > null or high < null


def votes_needed(rate: float | None, n: float, *, alpha: float = 0.05) -> int | None:
    """Further votes at the observed rate until the Wilson interval excludes 50%; None when it never will.

    The Wilson interval inverts the score test, so at rate p it excludes 0.5 exactly when
    |p - 0.5| > z * 0.5 / sqrt(n'), i.e. n' > z^2 / (4 (p - 0.5)^2). The closed form gives the answer;
    a few exact checks guard the floating-point boundary.
    """
    if rate is None or rate == 0.5 or n < 0:
        return None
    z = z_value(alpha)
    target = math.floor(z * z / (4 * (rate - 0.5) ** 2)) + 1
    k = max(0, math.ceil(target - n))
    while k > 0 and separates(rate * (n + k - 1), n + k - 1, alpha=alpha):
        k -= 1
    while not separates(rate * (n + k), n + k, alpha=alpha):
        k += 1
    return k


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def bootstrap_ci(
    values,
    *,
    stat: Callable = np.mean,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of stat(values), resampling values (e.g. prompts); NaNs dropped."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan
    z_value(alpha)
    idx = _rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    stats = np.array([stat(x[i]) for i in idx], dtype=float)
    low, high = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedDelta:
    """stat(x) - stat(y) over the same prompts, with a bootstrap interval that resamples prompts."""

    delta: float
    low: float
    high: float
    n: int
    alpha: float = 0.05

    def summary(self) -> str:
        """One line, e.g. 'Δ +0.120 (95% CI +0.040 to +0.200, n=30 prompts)'."""
        if self.n == 0:
            return "Δ n/a (no prompts scored by both)"
        return f"Δ {self.delta:+.3f} ({level(self.alpha)} CI {self.low:+.3f} to {self.high:+.3f}, n={self.n} prompts)"


def paired_delta_ci(
    x,
    y,
    *,
    stat: Callable = np.mean,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
    alpha: float = 0.05,
) -> PairedDelta:
    """Δ = stat(x) − stat(y) (e.g. x = SFT+DPO scores, y = SFT scores) with a paired bootstrap over prompts.

    Series are aligned on their index (the prompt id); plain sequences by position. Prompts missing
    a score on either side are dropped, so both sides always describe the same prompts.
    """
    if isinstance(x, pd.Series) and isinstance(y, pd.Series):
        both = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner")
        xs, ys = both["x"].to_numpy(dtype=float), both["y"].to_numpy(dtype=float)
    else:
        xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if xs.shape != ys.shape:
            raise RatingsError(f"paired scores need equal lengths; got {len(xs)} and {len(ys)}")
    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    if len(xs) == 0:
        return PairedDelta(math.nan, math.nan, math.nan, 0, alpha)
    z_value(alpha)
    idx = _rng(seed).integers(0, len(xs), size=(n_boot, len(xs)))
    deltas = np.array([stat(xs[i]) - stat(ys[i]) for i in idx], dtype=float)
    low, high = np.nanquantile(deltas, [alpha / 2, 1 - alpha / 2])
    return PairedDelta(float(stat(xs) - stat(ys)), float(low), float(high), int(len(xs)), alpha)
