"""Rating math against hand-computed cases, plus property tests for the invariants a user relies on."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import UserInputError
from evaluate.ratings import (
    RatingsError,
    bootstrap_ci,
    bradley_terry,
    judge_human_agreement,
    length_controlled_win_rate,
    mean_lengths,
    paired_delta_ci,
    position_bias,
    votes_needed,
    wilson_interval,
    win_matrix,
    win_rate,
)
from evaluate.ratings_length import _logistic

Z = 1.959963984540054  # two-sided 95% normal quantile; Z² = 3.841459


def battles(*specs):
    """Votes from (left, right, vote, count) tuples."""
    rows = [(left, right, vote) for left, right, vote, count in specs for _ in range(count)]
    return pd.DataFrame(rows, columns=["left", "right", "vote"])


# --- Wilson interval and votes needed -------------------------------------------------------------


def test_wilson_seven_of_ten_by_formula():
    # p = 0.7, n = 10: denom = 1 + Z²/n = 1.3841459
    # centre = (p + Z²/2n) / denom = (0.7 + 0.1920729) / 1.3841459 = 0.644493
    # half   = Z/denom · sqrt(p(1-p)/n + Z²/4n²) = 1.416010 · sqrt(0.021 + 0.0096036) = 0.247715
    # interval = (0.396778, 0.892209)
    low, high = wilson_interval(7, 10)
    assert low == pytest.approx(0.396778, abs=1e-6)
    assert high == pytest.approx(0.892209, abs=1e-6)


def test_win_rate_seven_of_ten_with_a_on_either_side_and_other_battles_ignored():
    votes = battles(
        ("sft+dpo", "sft", "left", 4),
        ("sft", "sft+dpo", "right", 3),  # sft+dpo on the right, and it won
        ("sft", "sft+dpo", "left", 3),
        ("base", "sft", "left", 5),  # another pair: must not count
    )
    w = win_rate(votes, "sft+dpo", "sft")
    assert (w.wins, w.losses, w.ties, w.both_bad) == (7, 3, 0, 0)
    assert w.rate == pytest.approx(0.7)
    assert (w.low, w.high) == pytest.approx((0.396778, 0.892209), abs=1e-6)
    # Separation at rate 0.7 needs n' > Z² / (4 · 0.2²) = 24.01, so n' = 25: 15 more votes.
    assert w.votes_needed == 15
    assert not w.separated


def test_summary_line_names_policy_interval_and_votes_still_needed():
    # 23 wins, 13 losses, 4 ties → 25 of 40 as half: 62.5%. Wilson(25, 40):
    # denom = 1.0960365, centre = (0.625 + 0.0480182)/denom = 0.614047,
    # half = 1.788229 · sqrt(0.00585938 + 0.00060023) = 0.143723 → 47.0–75.8%.
    # Needed: Z²/(4 · 0.125²) = 61.46 → n' = 62 → 22 more.
    votes = battles(
        ("sft+dpo", "sft", "left", 23),
        ("sft+dpo", "sft", "right", 13),
        ("sft", "sft+dpo", "tie", 4),
        ("sft", "sft+dpo", "both_bad", 3),
    )
    assert win_rate(votes, "sft+dpo", "sft").summary() == (
        "sft+dpo beats sft 62.5% (95% CI 47.0–75.8%, n=40, ties as half, 3 both-bad excluded); "
        "~22 more votes to separate at 95%"
    )


def test_tie_policies():
    votes = battles(
        ("a", "b", "left", 5), ("a", "b", "right", 3), ("b", "a", "tie", 2), ("a", "b", "both_bad", 1)
    )
    half = win_rate(votes, "a", "b", ties="half")
    # (5 + 2/2) / 10 = 0.6; Wilson(6, 10): centre (0.6 + 0.1920729)/1.3841459 = 0.572247,
    # half-width 1.416010 · sqrt(0.024 + 0.0096036) = 0.259573
    assert (half.successes, half.n, half.rate) == (6.0, 10, pytest.approx(0.6))
    assert (half.low, half.high) == pytest.approx((0.312674, 0.831820), abs=1e-6)
    assert half.both_bad == 1
    # Needed at 0.6: Z²/(4 · 0.1²) = 96.04 → n' = 97 → 87 more.
    assert half.votes_needed == 87
    assert win_rate(votes, "a", "b", ties="exclude").rate == pytest.approx(5 / 8)
    loss = win_rate(votes, "a", "b", ties="loss")
    assert loss.rate == pytest.approx(0.5)
    assert loss.votes_needed is None
    assert "no difference observed" in loss.summary()
    assert "ties excluded" in win_rate(votes, "a", "b", ties="exclude").summary()


def test_a_variant_that_wins_every_vote():
    votes = battles(("a", "b", "left", 5), ("b", "a", "right", 5))
    w = win_rate(votes, "a", "b")
    # p = 1: the Wilson low end is n / (n + Z²) = 10 / 13.841459 = 0.722467, the high end 1.
    assert w.rate == 1.0
    assert w.low == pytest.approx(0.722467, abs=1e-6)
    assert w.high == 1.0
    assert w.votes_needed == 0
    assert w.summary().endswith("separated at 95%")
    # 3-0: n/(n+Z²) = 3/6.84 = 0.4385 < 0.5, but 4/7.84 = 0.5102 > 0.5: one more vote.
    assert win_rate(votes.head(3), "a", "b").votes_needed == 1


def test_all_ties():
    votes = battles(("a", "b", "tie", 6), ("b", "a", "tie", 4))
    w = win_rate(votes, "a", "b")
    # Wilson(5, 10): centre 0.5, half-width 1.416010 · sqrt(0.025 + 0.0096036) = 0.263407
    assert w.rate == 0.5
    assert (w.low, w.high) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert w.votes_needed is None
    excluded = win_rate(votes, "a", "b", ties="exclude")
    assert excluded.rate is None and (excluded.low, excluded.high) == (0.0, 1.0)
    assert "no rated votes" in excluded.summary()
    bt = bradley_terry(votes, n_boot=50)
    assert bt["rating"].tolist() == pytest.approx([1000.0, 1000.0])
    assert (bt["low"] <= 1000 + 1e-9).all() and (bt["high"] >= 1000 - 1e-9).all()


@pytest.mark.parametrize(("successes", "n"), [(7, 10), (6, 10), (3, 3), (11, 20), (0, 4), (1, 9), (24.5, 40)])
def test_votes_needed_matches_brute_force(successes, n):
    rate = successes / n
    k = 0
    while True:
        low, high = wilson_interval(rate * (n + k), n + k)
        if low > 0.5 or high < 0.5:
            break
        k += 1
    assert votes_needed(rate, n) == k


# --- Bradley–Terry and the win matrix -------------------------------------------------------------


def test_bradley_terry_two_variants_by_hand():
    votes = battles(("a", "b", "left", 4), ("b", "a", "right", 3), ("a", "b", "right", 3))
    bt = bradley_terry(votes, n_boot=0).set_index("variant")
    # Two variants with c = 0.5 pseudo-wins each way: gap = 400·log10(7.5 / 3.5) = 132.397, mean 1000.
    assert bt.loc["a", "rating"] == pytest.approx(1066.199, abs=1e-3)
    assert bt.loc["b", "rating"] == pytest.approx(933.801, abs=1e-3)
    assert (bt.loc["a", "wins"], bt.loc["a", "losses"], bt.loc["a", "n_votes"]) == (7, 3, 10)
    anchored = bradley_terry(votes, n_boot=0, anchor="b").set_index("variant")
    assert anchored.loc["b", "rating"] == 1000.0
    assert anchored.loc["a", "rating"] == pytest.approx(1132.397, abs=1e-3)


def test_bradley_terry_keeps_a_clean_sweep_finite():
    votes = battles(("a", "b", "left", 5), ("b", "a", "right", 5))
    bt = bradley_terry(votes, n_boot=100, seed=3).set_index("variant")
    # gap = 400·log10(10.5 / 0.5) = 400·log10(21) = 528.888
    assert bt.loc["a", "rating"] == pytest.approx(1264.444, abs=1e-3)
    assert bt.loc["b", "rating"] == pytest.approx(735.556, abs=1e-3)
    assert np.isfinite(bt[["low", "high"]].to_numpy()).all()
    # Among three variants too: a beats everyone every time, b and c split.
    three = battles(
        ("a", "b", "left", 8), ("c", "a", "right", 8), ("b", "c", "left", 5), ("b", "c", "right", 5)
    )
    bt3 = bradley_terry(three, n_boot=100)
    assert bt3["variant"].tolist()[0] == "a"
    assert np.isfinite(bt3[["rating", "low", "high"]].to_numpy()).all()


def test_bradley_terry_cycle_gives_equal_ratings():
    votes = battles(("a", "b", "left", 4), ("b", "c", "left", 4), ("c", "a", "left", 4))
    assert bradley_terry(votes, n_boot=0)["rating"].tolist() == pytest.approx([1000.0] * 3)


def synthetic_votes(true: dict[str, float], per_pair: int, seed: int) -> pd.DataFrame:
    """Votes drawn from Bradley–Terry with the given Elo ratings, sides shuffled, 10% ties."""
    rng = np.random.default_rng(seed)
    rows = []
    names = list(true)
    for x in range(len(names)):
        for y in range(x + 1, len(names)):
            a, b = names[x], names[y]
            p = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
            for _ in range(per_pair):
                winner = None if rng.random() < 0.1 else (a if rng.random() < p else b)
                left, right = (a, b) if rng.random() < 0.5 else (b, a)
                outcome = "tie" if winner is None else ("left" if winner == left else "right")
                rows.append((left, right, outcome))
    return pd.DataFrame(rows, columns=["left", "right", "vote"])


def test_bradley_terry_recovers_a_known_ordering():
    true = {"dpo": 1200.0, "sft": 1000.0, "base": 800.0}
    votes = synthetic_votes(true, per_pair=300, seed=7)
    bt = bradley_terry(votes, n_boot=200, seed=1)
    assert bt["variant"].tolist() == ["dpo", "sft", "base"]
    assert bt["rating"].mean() == pytest.approx(1000.0)
    for row in bt.itertuples():
        assert row.low <= row.rating <= row.high
        assert abs(row.rating - true[row.variant]) < 40
        assert row.high - row.low < 120  # 600 votes per variant pin it to within tens of points
    # The intervals separate the three, as they should with 200-point gaps and 300 votes a pair.
    assert bt["low"].iloc[0] > bt["high"].iloc[1] and bt["low"].iloc[1] > bt["high"].iloc[2]
    assert bt.attrs["ties"] == "half" and bt.attrs["n_votes"] == len(votes)


def test_bradley_terry_randomness_only_from_seed():
    votes = synthetic_votes({"a": 1050.0, "b": 1000.0}, per_pair=40, seed=2)
    first = bradley_terry(votes, n_boot=50, seed=11)
    pd.testing.assert_frame_equal(first, bradley_terry(votes, n_boot=50, seed=11))
    pd.testing.assert_frame_equal(first, bradley_terry(votes, n_boot=50, seed=np.random.default_rng(11)))
    assert not np.allclose(first["low"], bradley_terry(votes, n_boot=50, seed=12)["low"])


def test_win_matrix_by_hand():
    votes = battles(
        ("a", "b", "left", 3),
        ("b", "a", "left", 1),
        ("a", "b", "tie", 2),  # a vs b: 3 + 1 of 6 as half → 4/6
        ("c", "a", "right", 2),  # a vs c: 2 of 2
        ("a", "c", "both_bad", 5),  # left out
    )
    m = win_matrix(votes)
    assert m.loc["a", "b"] == pytest.approx(4 / 6)
    assert m.loc["b", "a"] == pytest.approx(2 / 6)
    assert m.loc["a", "c"] == 1.0 and m.loc["c", "a"] == 0.0
    assert math.isnan(m.loc["b", "c"]) and math.isnan(m.loc["a", "a"])
    assert win_matrix(votes, ties="exclude").loc["a", "b"] == pytest.approx(3 / 4)


# --- Position bias --------------------------------------------------------------------------------


def test_position_bias_by_hand():
    votes = battles(
        ("a", "b", "left", 8), ("b", "a", "left", 5), ("a", "b", "right", 7), ("a", "b", "tie", 2)
    )
    votes = pd.concat([votes, battles(("b", "a", "both_bad", 1))], ignore_index=True)
    pb = position_bias(votes)
    # 13 left of 20 decisive: Wilson(13, 20): denom 1.1920729, centre (0.65 + 0.0960365)/denom = 0.625831,
    # half 1.644164 · sqrt(0.011375 + 0.00240091) = 0.192977 → (0.432854, 0.818808)
    assert (pb["n"], pb["left_wins"], pb["ties"], pb["both_bad"]) == (20, 13, 2, 1)
    assert pb["left_rate"] == pytest.approx(0.65)
    assert (pb["low"], pb["high"]) == pytest.approx((0.432854, 0.818808), abs=1e-6)
    assert pb["biased"] is False and "no position bias" in pb["summary"]
    assert position_bias(battles(("a", "b", "left", 10)))["biased"] is True
    assert position_bias(battles(("a", "b", "tie", 3)))["left_rate"] is None


# --- Length control -------------------------------------------------------------------------------


def length_votes(n: int, seed: int, *, mean_diff: float, slope: float, quality: float) -> pd.DataFrame:
    """Battles of a vs b where logit P(a wins) = quality + slope · tanh(diff / sd(diff))."""
    rng = np.random.default_rng(seed)
    diff = rng.normal(mean_diff, 100, n)
    p = 1 / (1 + np.exp(-(quality + slope * np.tanh(diff / diff.std()))))
    a_won = rng.random(n) < p
    a_left = rng.random(n) < 0.5
    len_b = rng.integers(100, 400, n).astype(float)
    len_a = len_b + diff
    return pd.DataFrame(
        {
            "left": np.where(a_left, "a", "b"),
            "right": np.where(a_left, "b", "a"),
            "vote": np.where(a_won == a_left, "left", "right"),
            "len_left": np.where(a_left, len_a, len_b),
            "len_right": np.where(a_left, len_b, len_a),
        }
    )


def test_length_controlled_removes_a_planted_length_bias():
    # a is no better at equal length (quality 0) but writes 150 more tokens and long answers win.
    votes = length_votes(400, seed=1, mean_diff=150, slope=2.5, quality=0.0)
    lc = length_controlled_win_rate(votes, "a", "b", n_boot=200, seed=0)
    assert lc.raw_rate > 0.75
    assert abs(lc.lc_rate - 0.5) < 0.08
    assert lc.low < 0.5 < lc.high < lc.raw_rate
    assert lc.length_coef > 1.0
    assert lc.raw_rate == pytest.approx(win_rate(votes, "a", "b").rate)
    assert lc.mean_len_a - lc.mean_len_b == pytest.approx(150, abs=20)
    assert "length-controlled" in lc.summary()


def test_length_controlled_leaves_a_real_quality_gap_alone():
    # a is better whatever the length; lengths are balanced: LC stays at the raw rate.
    votes = length_votes(400, seed=2, mean_diff=0, slope=0.0, quality=1.2)
    lc = length_controlled_win_rate(votes, "a", "b", n_boot=0)
    assert lc.raw_rate > 0.7
    assert lc.lc_rate == pytest.approx(lc.raw_rate, abs=0.03)
    assert math.isnan(lc.low)


def test_length_controlled_degenerate_cases():
    sweep = pd.DataFrame(
        {"left": ["a", "b", "a"], "right": ["b", "a", "b"], "vote": ["left", "right", "left"]}
        | {"len_left": [10, 20, 30], "len_right": [5, 50, 9]}
    )
    one = length_controlled_win_rate(sweep, "a", "b", n_boot=20)
    assert (one.raw_rate, one.lc_rate) == (1.0, 1.0)
    assert "one outcome only" in one.note
    same = sweep.assign(vote=["left", "left", "right"], len_right=sweep["len_left"])
    flat = length_controlled_win_rate(same, "a", "b", n_boot=0)
    assert flat.lc_rate == flat.raw_rate == pytest.approx(1 / 3)
    ties = sweep.assign(vote="tie")
    assert length_controlled_win_rate(ties, "a", "b", n_boot=0).lc_rate == pytest.approx(0.5)
    assert length_controlled_win_rate(ties, "a", "b", ties="exclude").n == 0


def test_in_house_logistic_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(0.3, 1, 300))
    y = (rng.random(300) < 1 / (1 + np.exp(-(0.4 + 1.5 * x)))).astype(float)
    wt = rng.random(300)
    for c in (0.01, 1.0, 100.0):
        model = LogisticRegression(C=c, tol=1e-10, max_iter=1000).fit(x[:, None], y, sample_weight=wt)
        assert _logistic(x, y, wt, c) == pytest.approx((model.intercept_[0], model.coef_[0, 0]), abs=1e-5)


def test_mean_lengths_by_hand():
    votes = pd.DataFrame(
        {
            "left": ["a", "b"],
            "right": ["b", "a"],
            "vote": ["left", "tie"],
            "len_left": [10, 30],
            "len_right": [20, 50],
        }
    )
    assert mean_lengths(votes) == {"a": 30.0, "b": 25.0}
    assert mean_lengths(pd.DataFrame({"variant": ["x", "x", "y"], "length": [1, 3, 7]})) == {
        "x": 2.0,
        "y": 7.0,
    }
    with pytest.raises(RatingsError, match="len_left"):
        mean_lengths(pd.DataFrame({"variant": ["x"]}))


# --- Bootstraps over prompts and agreement --------------------------------------------------------


def test_bootstrap_ci_by_hand():
    # Two values 0 and 1: a resample's mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% quantiles are 0 and 1.
    assert bootstrap_ci([0.0, 1.0], n_boot=4000) == (0.0, 1.0)
    assert bootstrap_ci([3.0] * 5) == (3.0, 3.0)
    low, high = bootstrap_ci(np.arange(30.0), seed=5)
    assert low < 14.5 < high
    assert bootstrap_ci(np.arange(30.0), seed=5) == (low, high)
    assert bootstrap_ci(np.arange(30.0), seed=np.random.default_rng(5)) == (low, high)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_paired_delta_aligns_prompts_and_is_x_minus_y():
    dpo = pd.Series({"p1": 1.0, "p2": 2.0, "p3": 3.0})
    sft = pd.Series({"p3": 1.0, "p2": 1.0, "p4": 9.0})
    d = paired_delta_ci(dpo, sft)
    # Common prompts p2, p3: mean(2, 3) − mean(1, 1) = 1.5
    assert (d.delta, d.n) == (1.5, 2)
    assert d.low <= d.delta <= d.high
    shift = paired_delta_ci(np.arange(10.0) + 1, np.arange(10.0))
    assert (shift.delta, shift.low, shift.high) == pytest.approx((1.0, 1.0, 1.0))
    assert shift.summary() == "Δ +1.000 (95% CI +1.000 to +1.000, n=10 prompts)"
    with pytest.raises(RatingsError, match="equal lengths"):
        paired_delta_ci([1, 2], [1])


def test_judge_human_agreement_by_hand():
    judge = ["a", "a", "b", "b", "a", "tie"]
    human = ["a", "b", "b", "b", "a", "a"]
    ag = judge_human_agreement(judge, human)
    # p_o = 4/6; p_e = (3/6)(3/6) + (2/6)(3/6) + (1/6)(0) = 5/12; κ = (2/3 − 5/12)/(1 − 5/12) = 3/7
    assert ag.accuracy == pytest.approx(4 / 6)
    assert ag.kappa == pytest.approx(3 / 7)
    assert "κ 0.43" in ag.summary()
    assert judge_human_agreement(["a", "a"], ["a", "a"]).kappa is None
    aligned = judge_human_agreement(pd.Series({1: "a", 2: "b"}), pd.Series({2: "b", 3: "a"}))
    assert (aligned.n, aligned.accuracy) == (1, 1.0)


# --- Input errors ---------------------------------------------------------------------------------


def test_bad_input_is_named():
    votes = battles(("a", "b", "left", 2))
    with pytest.raises(RatingsError, match="'draw'"):
        win_rate(votes.assign(vote="draw"), "a", "b")
    with pytest.raises(RatingsError, match="ties must be one of half, exclude, loss; got 'halve'"):
        win_rate(votes, "a", "b", ties="halve")
    with pytest.raises(RatingsError, match="vote"):
        win_rate(votes.drop(columns="vote"), "a", "b")
    with pytest.raises(RatingsError, match="anchor 'zzz'"):
        bradley_terry(votes, anchor="zzz")
    with pytest.raises(RatingsError, match="got 'loss'"):
        bradley_terry(votes, ties="loss")
    with pytest.raises(RatingsError, match="len_left"):
        length_controlled_win_rate(votes, "a", "b")
    # The CLI prints PrefLab errors as one line; library callers may catch ValueError.
    assert issubclass(RatingsError, UserInputError) and issubclass(RatingsError, ValueError)
    assert bradley_terry(votes.iloc[0:0]).empty


# --- Properties -----------------------------------------------------------------------------------

vote_rows = st.lists(
    st.tuples(st.booleans(), st.sampled_from(["left", "right", "tie", "both_bad"])), min_size=0, max_size=60
)


def frame(rows) -> pd.DataFrame:
    """Votes between a and b; the boolean says whether a is on the left."""
    return pd.DataFrame(
        [("a", "b", v) if a_left else ("b", "a", v) for a_left, v in rows], columns=["left", "right", "vote"]
    )


@settings(max_examples=150, deadline=None)
@given(vote_rows, st.sampled_from(["half", "exclude", "loss"]))
def test_win_rate_properties(rows, ties):
    votes = frame(rows)
    ab, ba = win_rate(votes, "a", "b", ties=ties), win_rate(votes, "b", "a", ties=ties)
    if ab.rate is None:
        assert ba.rate is None
        return
    assert 0 <= ab.low <= ab.rate <= ab.high <= 1
    if ties != "loss":  # under "loss" a tie is a loss for both sides, so the two rates need not sum to 1
        assert ab.rate + ba.rate == pytest.approx(1)
        assert (ab.low, ab.high) == pytest.approx((1 - ba.high, 1 - ba.low))
        assert ab.votes_needed == ba.votes_needed
    assert (ab.votes_needed == 0) == ab.separated


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcd"), st.sampled_from("abcd"), st.sampled_from(["left", "right", "tie"])
        ),
        min_size=1,
        max_size=40,
    )
)
def test_bradley_terry_properties(rows):
    votes = pd.DataFrame(rows, columns=["left", "right", "vote"])
    bt = bradley_terry(votes, n_boot=0)
    if bt.empty:
        assert (votes["left"] == votes["right"]).all()
        return
    assert np.isfinite(bt["rating"]).all()
    assert bt["rating"].mean() == pytest.approx(1000.0)
    # Swapping screen sides (and the votes with them) changes nothing.
    flipped = votes.assign(
        left=votes["right"],
        right=votes["left"],
        vote=votes["vote"].map({"left": "right", "right": "left", "tie": "tie"}),
    )
    again = bradley_terry(flipped, n_boot=0)
    assert again["rating"].to_numpy() == pytest.approx(bt["rating"].to_numpy(), abs=1e-6)
    m = win_matrix(votes)
    met = m.notna().to_numpy()
    assert (m.to_numpy()[met] + m.T.to_numpy()[met]) == pytest.approx(np.ones(met.sum()))


# --- Bradley–Terry against a library fit -----------------------------------------------------------


def sklearn_bradley_terry(votes: pd.DataFrame, *, ties: str, pseudo_count: float) -> dict[str, float]:
    """The same penalised MLE by scikit-learn: logistic regression without intercept on the ±1 design.

    Each rated vote is a row with +1 for the left variant and -1 for the right one, labelled 1 with weight
    the left side's score and 0 with the right side's (a tie: both halves); each pair that met adds
    `pseudo_count` wins each way; C = 1 / ridge matches the fit's tiny L2 term. Elo scale, mean 1000.
    """
    from sklearn.linear_model import LogisticRegression

    from evaluate.ratings_bt import _RIDGE, ELO_CENTRE, ELO_SCALE

    score = {"left": (1.0, 0.0), "right": (0.0, 1.0), "tie": (0.5, 0.5) if ties == "half" else None}
    rated = [(a, b, score[v]) for a, b, v in votes.itertuples(index=False) if a != b and score.get(v)]
    names = sorted({a for a, _, _ in rated} | {b for _, b, _ in rated})
    pairs = sorted({tuple(sorted((a, b))) for a, b, _ in rated})
    rows = [(a, b, s) for a, b, s in rated] + [(a, b, (pseudo_count, pseudo_count)) for a, b in pairs]
    x, y, weight = [], [], []
    for a, b, (s_a, s_b) in rows:
        design = np.zeros(len(names))
        design[names.index(a)], design[names.index(b)] = 1.0, -1.0
        for label, w in ((1, s_a), (0, s_b)):
            if w:
                x.append(design)
                y.append(label)
                weight.append(w)
    fit = LogisticRegression(fit_intercept=False, C=1 / _RIDGE, solver="newton-cholesky", tol=1e-12)
    theta = fit.fit(np.array(x), np.array(y), sample_weight=np.array(weight)).coef_[0]
    return dict(zip(names, ELO_CENTRE + ELO_SCALE * (theta - theta.mean()), strict=True))


@pytest.mark.parametrize(
    ("votes", "ties", "pseudo_count"),
    [
        (synthetic_votes({"dpo": 1200.0, "sft": 1000.0, "base": 800.0}, per_pair=60, seed=3), "half", 0.5),
        (
            synthetic_votes({"a": 1100.0, "b": 1000.0, "c": 1000.0, "d": 700.0}, per_pair=25, seed=5),
            "exclude",
            0.5,
        ),
        (battles(("a", "b", "left", 5), ("b", "a", "right", 5), ("c", "a", "tie", 2)), "half", 0.5),
        (battles(("a", "b", "left", 7), ("b", "c", "right", 2), ("c", "a", "left", 3)), "half", 2.0),
        # Two groups that never met: the ridge keeps each group's mean where the library's L2 term does.
        (
            battles(
                ("a", "b", "left", 4), ("b", "a", "left", 1), ("c", "d", "tie", 3), ("d", "c", "right", 2)
            ),
            "half",
            0.5,
        ),
    ],
)
def test_bradley_terry_equals_a_scikit_learn_fit(votes, ties, pseudo_count):
    ours = bradley_terry(votes, ties=ties, n_boot=0, pseudo_count=pseudo_count).set_index("variant")["rating"]
    theirs = sklearn_bradley_terry(votes, ties=ties, pseudo_count=pseudo_count)
    assert ours.to_dict() == pytest.approx(theirs, abs=1e-6)
