"""Rating math for the arena and the eval: pure functions over vote frames (columns left, right, vote).

Two variants: `win_rate` (Wilson interval, tie policy, votes still needed). More: `bradley_terry`
and `win_matrix` (evaluate/ratings_bt.py). Position bias, length control, bootstraps and
judge–human agreement are here or re-exported here, so callers import one module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.vocab import RatingTies, Vote
from evaluate.ratings_bt import bradley_terry, win_matrix
from evaluate.ratings_core import (
    TIE_WORDS,
    PairedDelta,
    RatingsError,
    bootstrap_ci,
    check_ties,
    check_votes,
    level,
    paired_delta_ci,
    pct,
    separates,
    votes_needed,
    wilson_interval,
)
from evaluate.ratings_length import LengthControlled, length_controlled_win_rate, mean_lengths

__all__ = [
    "Agreement",
    "LengthControlled",
    "PairedDelta",
    "RatingsError",
    "WinRate",
    "bootstrap_ci",
    "bradley_terry",
    "judge_human_agreement",
    "length_controlled_win_rate",
    "mean_lengths",
    "paired_delta_ci",
    "position_bias",
    "votes_needed",
    "wilson_interval",
    "win_matrix",
    "win_rate",
]


@dataclass(frozen=True)
class WinRate:
    """How often `a` beat `b`, with its Wilson interval and the votes still needed to tell them apart.

    Built from the vote counts; the rest follows from them under the tie policy (see `win_rate`).
    """

    a: str
    b: str
    wins: int
    losses: int
    ties: int
    both_bad: int
    ties_policy: str
    alpha: float = 0.05
    n: float = field(init=False)  # effective number of rated votes under the tie policy
    successes: float = field(init=False)  # wins, plus half the ties under "half"
    rate: float | None = field(init=False)  # None when no vote is rated
    low: float = field(init=False)
    high: float = field(init=False)
    votes_needed: int | None = field(init=False)  # further votes at this rate until the interval excludes 50%

    def __post_init__(self) -> None:
        n = self.wins + self.losses + (0 if self.ties_policy == RatingTies.EXCLUDE else self.ties)
        successes = self.wins + (0.5 * self.ties if self.ties_policy == RatingTies.HALF else 0.0)
        rate = successes / n if n else None
        low, high = wilson_interval(successes, n, alpha=self.alpha)
        needed = votes_needed(rate, n, alpha=self.alpha) if n else None
        derived = {
            "n": n,
            "successes": successes,
            "rate": rate,
            "low": low,
            "high": high,
            "votes_needed": needed,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @property
    def separated(self) -> bool:
        """Whether the interval already excludes 50%."""
        return self.rate is not None and (self.low > 0.5 or self.high < 0.5)

    def summary(self) -> str:
        """E.g. 'sft+dpo beats sft 62.5% (95% CI 47.0–75.8%, n=40, ties as half, 3 both-bad excluded); ...'."""
        bad = f", {self.both_bad} both-bad excluded" if self.both_bad else ""
        if self.rate is None:
            return f"{self.a} vs {self.b}: no rated votes yet ({TIE_WORDS[self.ties_policy]}{bad})"
        lvl = level(self.alpha)
        head = (
            f"{self.a} beats {self.b} {pct(self.rate)} ({lvl} CI {100 * self.low:.1f}–{100 * self.high:.1f}%, "
            f"n={self.n:g}, {TIE_WORDS[self.ties_policy]}{bad})"
        )
        if self.votes_needed is None:
            return f"{head}; no difference observed"
        if self.votes_needed == 0:
            return f"{head}; separated at {lvl}"
        return f"{head}; ~{self.votes_needed} more votes to separate at {lvl}"


def _oriented(votes: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Votes between a and b with outcome from a's side: 'win', 'loss', 'tie' or 'both_bad'."""
    pair = votes[
        ((votes["left"] == a) & (votes["right"] == b)) | ((votes["left"] == b) & (votes["right"] == a))
    ]
    a_left = (pair["left"] == a).to_numpy()
    v = pair["vote"].to_numpy()
    outcome = np.where(
        v == Vote.LEFT,
        np.where(a_left, "win", "loss"),
        np.where(v == Vote.RIGHT, np.where(a_left, "loss", "win"), v),
    )
    return pair.assign(a_left=a_left, outcome=outcome)


def win_rate(
    votes: pd.DataFrame, a: str, b: str, *, ties: str = RatingTies.HALF.value, alpha: float = 0.05
) -> WinRate:
    """Win rate of `a` over `b` from blind votes, both-bad reported apart, with a Wilson interval.

    Ties: "half" counts a tie as half a win in n ties+decisive votes. The Wilson interval then uses
    the effective successes and n; a 0/½/1 outcome has at most the variance of a 0/1 one with the
    same mean, so the interval is, if anything, a little conservative. "exclude" drops ties,
    "loss" counts them as non-wins for `a`. Votes between other variants are ignored.
    """
    check_ties(ties)
    check_votes(votes)
    if a == b:
        raise RatingsError(f"win_rate needs two different variants; got {a!r} twice")
    o = _oriented(votes, a, b)["outcome"]
    wins, losses = int((o == "win").sum()), int((o == "loss").sum())
    n_ties, both_bad = int((o == Vote.TIE).sum()), int((o == Vote.BOTH_BAD).sum())
    return WinRate(a, b, wins, losses, n_ties, both_bad, ties_policy=ties, alpha=alpha)


def position_bias(votes: pd.DataFrame, *, alpha: float = 0.05) -> dict:
    """Left-win rate among decisive votes (all variants pooled) with a Wilson interval; 50% is unbiased."""
    check_votes(votes)
    v = votes["vote"]
    left, right = int((v == Vote.LEFT).sum()), int((v == Vote.RIGHT).sum())
    n = left + right
    rate = left / n if n else None
    low, high = wilson_interval(left, n, alpha=alpha)
    biased = n > 0 and separates(left, n, alpha=alpha)
    if n == 0:
        summary = "position bias: no decisive votes yet"
    else:
        verdict = "position bias detected" if biased else "no position bias detected"
        summary = (
            f"left side wins {pct(rate)} of {n} decisive votes ({level(alpha)} CI "
            f"{100 * low:.1f}–{100 * high:.1f}%): {verdict}"
        )
    return {
        "n": n,
        "left_wins": left,
        "right_wins": right,
        "ties": int((v == Vote.TIE).sum()),
        "both_bad": int((v == Vote.BOTH_BAD).sum()),
        "left_rate": rate,
        "low": low,
        "high": high,
        "alpha": alpha,
        "biased": bool(biased),
        "summary": summary,
    }


@dataclass(frozen=True)
class Agreement:
    """How often the judge picked what the humans picked, and Cohen's κ (chance-corrected)."""

    n: int
    accuracy: float | None
    kappa: float | None  # None when undefined: fewer than 2 items, or a single category overall

    def summary(self) -> str:
        """E.g. 'judge agrees with humans on 80.0% of 25 items (Cohen's κ 0.62)'."""
        if self.n == 0:
            return "judge–human agreement: no items rated by both"
        kappa = "undefined" if self.kappa is None else f"{self.kappa:.2f}"
        return f"judge agrees with humans on {pct(self.accuracy)} of {self.n} items (Cohen's κ {kappa})"


def judge_human_agreement(judge, human) -> Agreement:
    """Accuracy and Cohen's κ (scikit-learn) between two aligned label sequences; missing pairs dropped.

    Series are aligned on their index (e.g. pair or battle id); plain sequences by position.
    """
    if isinstance(judge, pd.Series) and isinstance(human, pd.Series):
        both = pd.concat([judge.rename("j"), human.rename("h")], axis=1, join="inner")
    else:
        judge, human = list(judge), list(human)
        if len(judge) != len(human):
            raise RatingsError(
                f"agreement needs aligned labels; got {len(judge)} judge and {len(human)} human"
            )
        both = pd.DataFrame({"j": judge, "h": human})
    both = both.dropna()
    n = len(both)
    if n == 0:
        return Agreement(0, None, None)
    j, h = both["j"].astype(str).tolist(), both["h"].astype(str).tolist()
    accuracy = sum(x == y for x, y in zip(j, h, strict=True)) / n
    kappa = None
    if n >= 2 and len(set(j) | set(h)) >= 2:
        from sklearn.metrics import cohen_kappa_score

        value = float(cohen_kappa_score(j, h))
        kappa = None if math.isnan(value) else value
    return Agreement(n, accuracy, kappa)
