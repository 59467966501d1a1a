"""Eval scorers against hand-computed cases: ROUGE-L, the demo heuristics, faithfulness and preference."""

from __future__ import annotations

import json

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from evaluate.scorers import (
    FaithfulnessScorer,
    Item,
    PreferenceScorer,
    checkable_facts,
    claude_faithfulness,
    default_scorers,
    format_conformance,
    rouge_l,
    rule_faithfulness,
    severity_match,
    word_count,
)
from models.judge import PairVerdict, RuleJudge, Verdict
from tests.models.test_judge_support import FakeAPI, message_json

GOOD = (
    "Severity: SEV1\nSummary: Checkout is down for all EU users.\nNext steps:\n- Roll back\n- Page payments"
)
WEAK = "Severity: SEV3\nSummary: Some errors.\nNext steps:\n- Investigate\n- Monitor"
REPORT = (
    "Triage this incident report.\n\nCalls from inventory-sync to ShipRoute fail for EU customers from "
    "17:00 AEST. About 15% of those calls end in an error."
)


# --- ROUGE-L -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "reference", "expected"),
    [
        # LCS the cat on the mat = 5 of 6 tokens each side: P = R = F = 5/6.
        ("the cat sat on the mat", "the cat is on the mat", 5 / 6),
        # LCS 2; P = 2/2, R = 2/5; F = 2 * 1 * 0.4 / 1.4 = 4/7.
        ("Severity: SEV2", "Severity: SEV2\nSummary: API down.", 4 / 7),
        # A subsequence, not a substring: LCS a b c = 3; P = 3/5, R = 1; F = 1.2 / 1.6 = 0.75.
        ("a x b y c", "a b c", 0.75),
        # Order matters: reversed, only one token can be in common order; P = R = 1/4.
        ("a b c d", "d c b a", 0.25),
        # Lowercased, punctuation is not a token.
        ("API Down!", "api down", 1.0),
        ("nothing shared", "entirely different", 0.0),
        ("", "api down", 0.0),
    ],
)
def test_rouge_l_on_hand_computed_cases(candidate, reference, expected):
    assert rouge_l(candidate, reference) == pytest.approx(expected)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab c1-É.\n", max_size=40), st.text(alphabet="ab c1-É.\n", max_size=40))
def test_rouge_l_is_the_rouge_score_package(candidate, reference):
    # The eval's number is Google's rouge-score ROUGE-L F1 with its default tokenizer and no stemming.
    library = rouge_scorer.RougeScorer(["rougeL"]).score(reference, candidate)["rougeL"].fmeasure
    assert rouge_l(candidate, reference) == library


def test_the_rouge_row_scores_against_the_gold_answer_or_not_at_all():
    rouge = next(s for s in default_scorers(RuleJudge(), "sft") if s.kind == "reference")
    outputs = {"sft": "the cat sat on the mat", "dpo": ""}
    assert rouge.score(Item(1, [], {"answer": "the cat is on the mat"}, outputs), "sft") == {
        "sft": pytest.approx(5 / 6),
        "dpo": 0.0,
    }
    assert rouge.score(Item(2, [], {"severity": "SEV2"}, outputs), "sft") == {"sft": None, "dpo": None}


# --- heuristics ---------------------------------------------------------------------------------------


def test_format_conformance_counts_the_five_checks():
    assert format_conformance(GOOD) == 1.0
    # One bullet (2-4 needed) and fewer than five lines: 3 of 5 checks pass.
    assert format_conformance(
        "Severity: SEV2\nSummary: API down.\nNext steps:\n- Roll back"
    ) == pytest.approx(0.6)
    assert format_conformance("The API is down, please look.") == 0.0


def test_severity_match_is_exact_and_needs_gold():
    assert severity_match(GOOD, {"answer": "...", "severity": "SEV1"}) == 1.0
    assert severity_match(GOOD, {"severity": "SEV2"}) == 0.0
    assert severity_match("Could be SEV1 or SEV2.", {"severity": "SEV1"}) == 0.0  # hedging is no answer
    assert severity_match("Severity: SEV3", "Severity: SEV3\nSummary: x.") == 1.0  # gold as plain text
    assert severity_match(GOOD, None) is None


def test_word_count():
    assert word_count("a b  c\nd") == 4.0
    assert word_count("") == 0.0


# --- faithfulness ---------------------------------------------------------------------------------------


def test_checkable_facts_are_numbers_times_services_and_acronyms_not_severity():
    facts = checkable_facts(
        "Severity: SEV2 ShipRoute in EU since 17:00 AEST, 15% of 61,000 inventory-sync calls"
    )
    assert facts == ["17:00", "15", "61000", "inventory-sync", "ShipRoute", "EU", "AEST"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # All six facts are in the report: 1 + 3 * 6/6 + 1.
        (
            "Severity: SEV2\nSummary: ShipRoute is degraded for EU customers since 17:00 AEST, so about 15% of "
            "inventory-sync calls fail.\nNext steps:\n- a\n- b",
            5.0,
        ),
        # ShipRoute found; 18:30, 40 and US invented ('us' inside 'customers' does not count): 1 + 3/4 + 1.
        ("Summary: ShipRoute is down since 18:30 for 40% of US users.", 2.75),
        # Nothing found: 1 + 0 + 0.
        ("Summary: PayGate fails for 90% of APAC users.", 1.0),
        # Nothing checkable: 2.5.
        ("Summary: Something is broken.", 2.5),
        # No Summary line: the whole answer is checked.
        ("ShipRoute is slow for EU.", 5.0),
        ("", 1.0),
    ],
)
def test_rule_faithfulness_on_hand_computed_cases(answer, expected):
    assert rule_faithfulness(REPORT, answer) == pytest.approx(expected)


def test_rule_faithfulness_matches_facts_the_way_reports_write_them():
    report = "secret scanner hit in ledger-reconciler at 2025-03-31T05:49:00; 61000 keys, 1.5% of traffic"
    # Hyphen as space, a time inside a timestamp, thousands separators, a decimal.
    assert rule_faithfulness(report, "Summary: secret-scanner hit at 05:49 on 61,000 keys (1.5%).") == 5.0
    # '15' is not '1.5', and '49' alone is not the minute of '05:49': 1 + 3 * 1/3 + 1.
    assert rule_faithfulness(report, "Summary: ledger-reconciler lost 15 keys at 49.") == pytest.approx(3.0)


def _faithfulness_api(score) -> FakeAPI:
    return FakeAPI(default=httpx2.Response(200, json=message_json(text=json.dumps(score))))


def test_claude_faithfulness_sends_the_rubric_and_report_and_parses_the_score():
    api = _faithfulness_api({"rationale": "All facts are in the report.", "score": 4})
    judge = api.judge()
    assert claude_faithfulness(judge, [{"role": "user", "content": REPORT}], GOOD) == 4.0
    (body,) = api.message_calls
    assert "faithful" in body["system"][0]["text"]
    assert "ShipRoute" in body["messages"][0]["content"] and GOOD in body["messages"][0]["content"]
    assert body["output_config"]["format"]["schema"]["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]


def test_claude_faithfulness_out_of_range_is_a_failure_not_a_number():
    api = _faithfulness_api({"rationale": "?", "score": 7})
    scorer = FaithfulnessScorer(api.judge())
    item = Item(1, [{"role": "user", "content": REPORT}], None, {"sft": GOOD})
    assert scorer.score(item, "sft") == {"sft": None}
    assert scorer.failures == 1
    assert scorer.name == "faithfulness 1–5 (Claude Opus (claude-opus-4-7))"


def test_rule_judge_faithfulness_row_says_it_is_a_rule_based_proxy():
    scorer = FaithfulnessScorer(RuleJudge())
    assert "rule-based proxy" in scorer.name
    item = Item(1, [{"role": "user", "content": REPORT}], None, {"sft": "Summary: ShipRoute is slow for EU."})
    assert scorer.score(item, "sft") == {"sft": 5.0}


# --- preference vs the reference -------------------------------------------------------------------------


def test_preference_win_loss_and_self_tie_with_the_rule_judge():
    judge = RuleJudge()
    scorer = PreferenceScorer(judge, "sft")
    item = Item(
        1, [{"role": "user", "content": "x"}], {"severity": "SEV1"}, {"base": WEAK, "sft": WEAK, "dpo": GOOD}
    )
    assert scorer.score(item, "sft") == {"base": 0.5, "sft": 0.5, "dpo": 1.0}
    flipped = Item(1, item.messages, item.gold, {"sft": GOOD, "dpo": WEAK})
    assert scorer.score(flipped, "sft") == {"sft": 0.5, "dpo": 0.0}
    assert scorer.name == "preference vs sft (rule-based judge, both orders)"


class ScriptedJudge:
    """Returns a fixed pair status, and records calls."""

    name, label, model = "fake", "fake judge", None

    def __init__(self, status):
        self.status = status
        self.calls = []

    def judge_pair(self, prompt, a, b, *, gold=None):
        self.calls.append((a, b))
        v = dict(rationale="r", confidence=0.5, usage={}, judge="fake", model=None, rubric_hash="h")
        if self.status == "failed":
            return PairVerdict.combine(None, None, error="boom")
        ab = Verdict(winner="a", position_order="ab", **v)
        ba = Verdict(winner="a" if self.status == "ok" else "b", position_order="ba", **v)
        return PairVerdict.combine(ab, ba)


@pytest.mark.parametrize(("status", "expected"), [("ok", 1.0), ("unsure", 0.5), ("failed", None)])
def test_preference_inconsistent_is_a_tie_and_failure_is_missing(status, expected):
    judge = ScriptedJudge(status)
    scorer = PreferenceScorer(judge, "sft")
    out = scorer.score(Item(1, [], None, {"sft": WEAK, "dpo": GOOD}), "sft")
    assert out == {"sft": 0.5, "dpo": expected}
    assert judge.calls == [(GOOD, WEAK)]  # the reference itself is never sent to the judge
    assert scorer.failures == (status == "failed")


def test_default_scorers_name_every_row():
    names = [s.name for s in default_scorers(RuleJudge(), "sft")]
    assert names == [
        "format conformance (heuristic)",
        "severity match vs gold (heuristic)",
        "length in words (heuristic)",
        "ROUGE-L vs gold (reference)",
        "faithfulness 1–5 (rule-based proxy, no LLM)",
        "preference vs sft (rule-based judge, both orders)",
    ]
    # What an eval run records about each row (eval_runs.config.scorers).
    assert [s.describe() for s in default_scorers(RuleJudge(), "sft")[:4]] == [
        {"name": name, "kind": kind, "decimals": decimals, "uses_judge": False}
        for name, kind, decimals in [
            ("format conformance (heuristic)", "heuristic", 2),
            ("severity match vs gold (heuristic)", "heuristic", 2),
            ("length in words (heuristic)", "heuristic", 1),
            ("ROUGE-L vs gold (reference)", "reference", 2),
        ]
    ]


def test_the_rule_judge_abstains_from_preference_on_prompts_without_a_gold_severity():
    # On any other data its scores are noise: the eval row stays empty instead of reading like a result.
    scorer = PreferenceScorer(RuleJudge(), "sft")
    item = Item(1, [{"role": "user", "content": "Write a haiku."}], None, {"sft": WEAK, "dpo": GOOD})
    assert scorer.score(item, "sft") == {"sft": None, "dpo": None}
    assert scorer.failures == 0 and scorer.abstained == 1
