"""The rule-based demo judge: format, severity against gold, brevity, and order consistency."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.judge import RuleJudge, make_judge, score_answer

PROMPT = [{"role": "user", "content": "Triage this incident report: the EU checkout API returns 500s."}]
GOLD = {
    "severity": "SEV1",
    "answer": "Severity: SEV1\nSummary: EU checkout is down.\nNext steps:\n- Roll back",
}


def answer(
    sev="SEV1", summary="Checkout is failing for all EU shoppers.", steps=("Roll back v2.3", "Page payments")
):
    """A triage answer in the exact demo format."""
    return "\n".join([f"Severity: {sev}", f"Summary: {summary}", "Next steps:", *(f"- {s}" for s in steps)])


def test_correct_severity_beats_wrong_severity_in_both_orders():
    pair = RuleJudge().judge_pair(PROMPT, answer("SEV1"), answer("SEV3"), gold=GOLD)
    assert (pair.status, pair.suggestion) == ("ok", "a")
    assert (pair.ab.winner, pair.ba.winner) == ("a", "a")
    swapped = RuleJudge().judge_pair(PROMPT, answer("SEV3"), answer("SEV1"), gold=GOLD)
    assert swapped.suggestion == "b"


def test_nearer_severity_wins_and_under_rating_is_worse():
    judge = RuleJudge()
    assert judge.judge_pair(PROMPT, answer("SEV3"), answer("SEV2"), gold=GOLD).suggestion == "b"
    sev2_gold = {"severity": "SEV2"}
    # SEV3 under-rates a SEV2, SEV1 over-rates it: the over-rating is the smaller mistake.
    assert judge.judge_pair(PROMPT, answer("SEV3"), answer("SEV1"), gold=sev2_gold).suggestion == "b"


def test_bad_format_loses_even_with_the_right_severity():
    prose = "This looks like a SEV1 to me. Checkout is failing in the EU, so roll back and page payments."
    pair = RuleJudge().judge_pair(PROMPT, prose, answer("SEV1"), gold=GOLD)
    assert pair.suggestion == "b"
    preamble = "Sure! Here is my triage.\n" + answer("SEV1")
    assert RuleJudge().judge_pair(PROMPT, preamble, answer("SEV1"), gold=GOLD).suggestion == "b"


def test_format_decides_without_gold():
    one_bullet = answer(steps=("Roll back",))
    pair = RuleJudge().judge_pair(PROMPT, answer(), one_bullet)
    assert pair.suggestion == "a"
    assert "1 next-step bullets instead of 2-4" in pair.rationale


def test_two_sentence_summary_and_long_answers_lose():
    judge = RuleJudge()
    two = answer(summary="Checkout fails. EU shoppers cannot pay.")
    assert judge.judge_pair(PROMPT, two, answer(), gold=GOLD).suggestion == "b"
    wordy = answer(steps=("Roll back " + "carefully " * 150, "Page payments"))
    assert judge.judge_pair(PROMPT, answer(), wordy, gold=GOLD).suggestion == "a"


def test_identical_answers_tie():
    pair = RuleJudge().judge_pair(PROMPT, answer(), answer(), gold=GOLD)
    assert (pair.status, pair.suggestion) == ("ok", "tie")
    assert pair.ab.confidence == 0.5


def test_rule_judge_is_labelled_and_explains_itself():
    judge = make_judge("rule")
    assert (judge.name, judge.label, judge.model) == ("rule", "rule-based judge", None)
    pair = judge.judge_pair(PROMPT, answer("SEV1"), answer("SEV4"), gold=GOLD)
    headline, rationale = pair.display()
    assert headline.startswith("rule-based judge suggests A · confidence ")
    assert rationale.startswith("Rule-based judge (no LLM")
    assert "severity SEV1 matches gold" in rationale
    assert "severity SEV4 is 3 level(s) below gold SEV1" in rationale
    assert pair.ab.usage == {"input_tokens": 0, "output_tokens": 0}


def test_gold_severity_can_come_from_the_gold_answer():
    parts = score_answer(answer("SEV1"), {"answer": "Severity: SEV1\nSummary: x."}).parts
    assert parts["severity"] == 1.0
    assert "severity" not in score_answer(answer("SEV1"), None).parts
    # The raw data/incidents.jsonl row fields work too.
    assert score_answer(answer("SEV2"), {"gold_severity": "SEV3"}).parts["severity"] == 0.5
    assert score_answer(answer("SEV3"), "Severity: SEV3\nSummary: x.").parts["severity"] == 1.0


def test_hedged_severity_counts_as_none():
    hedged = "It is SEV1 or SEV2, hard to say."
    assert score_answer(hedged, GOLD).parts["severity"] == 0.0


_lines = st.sampled_from(
    ["Severity: SEV1", "Severity: SEV2", "Severity: SEV4", "Summary: Checkout is down.", "Summary: Bad. Worse.",
     "Next steps:", "- Roll back", "- Page the on-call", "Sure, here you go:", "SEV3", ""]
)  # fmt: skip
_answers = st.one_of(
    st.builds(
        answer,
        st.sampled_from(["SEV1", "SEV2", "SEV3", "SEV4", "SEV9"]),
        st.text(min_size=0, max_size=60),
        st.lists(st.text(min_size=1, max_size=40), min_size=0, max_size=6),
    ),
    st.lists(_lines, max_size=9).map("\n".join),
    st.text(max_size=300),
)


@settings(max_examples=300, deadline=None)
@given(a=_answers, b=_answers, gold=st.sampled_from([None, GOLD, {"severity": "SEV3"}]))
def test_rule_judge_is_position_consistent(a, b, gold):
    judge = RuleJudge()
    pair = judge.judge_pair(PROMPT, a, b, gold=gold)
    assert pair.status == "ok"
    assert pair.ab.winner == pair.ba.winner == pair.suggestion
    # Swapping A and B swaps the suggestion.
    flipped = {"a": "b", "b": "a", "tie": "tie"}[pair.suggestion]
    assert judge.judge_pair(PROMPT, b, a, gold=gold).suggestion == flipped
    assert 0.5 <= pair.ab.confidence <= 1.0
