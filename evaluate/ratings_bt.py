"""Bradley–Terry ratings on the Elo scale with bootstrap intervals, and the pairwise win-fraction matrix."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from common.vocab import RatingTies, plain
from evaluate.ratings_core import RatingsError, _rng, check_ties, check_votes, side_scores, z_value

ELO_SCALE = 400 / math.log(10)  # P(i beats j) = 1 / (1 + 10 ** ((R_j - R_i) / 400))
ELO_CENTRE = 1000.0
BT_COLUMNS = ["variant", "rating", "low", "high", "n_votes", "wins", "losses", "ties"]
# Keeps the offset between disconnected groups of variants (never compared) at 0 instead of
# undefined; far too small to move ratings that the votes determine.
_RIDGE = 1e-6


def _pair_weights(
    i: np.ndarray, j: np.ndarray, s_i: np.ndarray, s_j: np.ndarray, counts: np.ndarray, k: int
) -> np.ndarray:
    """W[x, y] = total score of x against y over the votes, each vote weighted by its count."""
    w = np.bincount(i * k + j, weights=counts * s_i, minlength=k * k)
    w += np.bincount(j * k + i, weights=counts * s_j, minlength=k * k)
    return w.reshape(k, k)


def _fit(w: np.ndarray, pseudo_count: float) -> np.ndarray:
    """Penalised Bradley–Terry MLE in natural-log units by Newton's method with backtracking.

    Every pair that met gets `pseudo_count` extra wins on each side (a virtual tie), so a variant
    that wins every vote still has a finite rating; the objective is then strictly convex.
    """
    met = (w + w.T) > 0
    w = w + pseudo_count * met
    n = w + w.T
    k = len(w)

    def objective(theta: np.ndarray) -> float:
        d = theta[:, None] - theta[None, :]
        return float((w * np.logaddexp(0, -d)).sum() + 0.5 * _RIDGE * theta @ theta)

    theta = np.zeros(k)
    f = objective(theta)
    for _ in range(100):
        d = theta[:, None] - theta[None, :]
        p = 1 / (1 + np.exp(-d))
        g = w * (1 - p)
        grad = g.sum(0) - g.sum(1) + _RIDGE * theta
        if np.abs(grad).max() < 1e-10:
            break
        v = n * p * (1 - p)
        hess = np.diag(v.sum(1) + _RIDGE) - v
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-8:
            new = objective(theta - t * step)
            if new <= f:
                break
            t /= 2
        theta, f = theta - t * step, new
    return theta


def _ratings(theta: np.ndarray, present: np.ndarray, anchor: int | None) -> np.ndarray:
    """Elo-scale ratings of the present variants: the anchor at 1000, else their mean at 1000."""
    out = np.full(len(theta), np.nan)
    if anchor is not None and not present[anchor]:
        return out
    ref = theta[anchor] if anchor is not None else theta[present].mean()
    out[present] = ELO_CENTRE + ELO_SCALE * (theta[present] - ref)
    return out


def bradley_terry(
    votes: pd.DataFrame,
    *,
    ties: str = RatingTies.HALF.value,
    n_boot: int = 200,
    seed: int | np.random.Generator = 0,
    anchor: str | None = None,
    alpha: float = 0.05,
    pseudo_count: float = 0.5,
) -> pd.DataFrame:
    """Bradley–Terry ratings (Elo scale, mean 1000 or `anchor` = 1000) with percentile-bootstrap intervals.

    Ties count half a win to each side ("half") or are dropped ("exclude"); both-bad votes are dropped.
    The bootstrap resamples votes; a variant absent from a resample gets no rating there.
    `pseudo_count` wins on each side of every pair that met (default one virtual tie per pair) keep a
    clean sweep finite: with two variants the gap is 400·log10((wins + c) / (losses + c)).
    Columns: variant, rating, low, high, n_votes, wins, losses, ties; best first. Settings in `.attrs`.
    """
    check_ties(ties, plain(RatingTies.HALF, RatingTies.EXCLUDE))
    check_votes(votes)
    z_value(alpha)
    if pseudo_count <= 0:
        raise RatingsError(f"pseudo_count must be > 0 to keep ratings finite, got {pseudo_count!r}")
    s_left, s_right, rated = side_scores(votes["vote"], ties)
    rated &= (votes["left"] != votes["right"]).to_numpy()
    names = sorted(set(votes["left"][rated]) | set(votes["right"][rated]))
    attrs = {"ties": ties, "n_boot": n_boot, "seed": seed if isinstance(seed, int) else None}
    attrs |= {"anchor": anchor, "pseudo_count": pseudo_count, "alpha": alpha, "n_votes": int(rated.sum())}
    if anchor is not None and anchor not in names:
        raise RatingsError(f"anchor {anchor!r} has no rated votes; variants: {', '.join(names) or 'none'}")
    if not names:
        out = pd.DataFrame(columns=BT_COLUMNS)
        out.attrs = attrs
        return out
    k = len(names)
    index = {name: x for x, name in enumerate(names)}
    i = votes["left"][rated].map(index).to_numpy()
    j = votes["right"][rated].map(index).to_numpy()
    s_i, s_j = s_left[rated], s_right[rated]
    a = index[anchor] if anchor is not None else None

    w = _pair_weights(i, j, s_i, s_j, np.ones(len(i)), k)
    rating = _ratings(_fit(w, pseudo_count), np.ones(k, bool), a)
    low = high = np.full(k, np.nan)
    if n_boot > 0:
        rng = _rng(seed)
        boots = np.empty((n_boot, k))
        for r in range(n_boot):
            counts = rng.multinomial(len(i), np.full(len(i), 1 / len(i))).astype(float)
            present = np.bincount(np.concatenate([i, j]), weights=np.tile(counts, 2), minlength=k) > 0
            boots[r] = _ratings(_fit(_pair_weights(i, j, s_i, s_j, counts, k), pseudo_count), present, a)
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", RuntimeWarning
            )  # a variant or anchor missing from every resample: NaN
            low, high = np.nanquantile(boots, [alpha / 2, 1 - alpha / 2], axis=0)

    decisive_i = s_i == 1
    decisive_j = s_j == 1
    tie = ~decisive_i & ~decisive_j
    wins = np.bincount(i[decisive_i], minlength=k) + np.bincount(j[decisive_j], minlength=k)
    losses = np.bincount(j[decisive_i], minlength=k) + np.bincount(i[decisive_j], minlength=k)
    n_ties = np.bincount(i[tie], minlength=k) + np.bincount(j[tie], minlength=k)
    out = pd.DataFrame(
        {
            "variant": names,
            "rating": rating,
            "low": low,
            "high": high,
            "n_votes": wins + losses + n_ties,
            "wins": wins,
            "losses": losses,
            "ties": n_ties,
        }
    )
    out = out.sort_values(["rating", "variant"], ascending=[False, True], ignore_index=True)
    out.attrs = attrs
    return out


def win_matrix(votes: pd.DataFrame, *, ties: str = RatingTies.HALF.value) -> pd.DataFrame:
    """Share of its rated votes against each column variant that each row variant won; NaN where they never met.

    Ties follow the same policies as `win_rate`; both-bad votes are left out.
    """
    check_ties(ties)
    check_votes(votes)
    s_left, s_right, rated = side_scores(votes["vote"], ties)
    rated &= (votes["left"] != votes["right"]).to_numpy()
    names = sorted(set(votes["left"]) | set(votes["right"]))
    k = len(names)
    index = {name: x for x, name in enumerate(names)}
    i = votes["left"][rated].map(index).to_numpy(dtype=int)
    j = votes["right"][rated].map(index).to_numpy(dtype=int)
    ones = np.ones(len(i))
    score = _pair_weights(i, j, s_left[rated], s_right[rated], ones, k)
    met = _pair_weights(i, j, ones, ones, ones, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(met > 0, score / met, np.nan)
    out = pd.DataFrame(frac, index=pd.Index(names, name="variant"), columns=pd.Index(names, name="opponent"))
    return out
