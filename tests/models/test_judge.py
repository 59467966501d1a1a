"""The Claude judge against a fake Anthropic API: both orders, position consistency, backoff, secrets."""

from __future__ import annotations

import logging

import httpx2
import pytest

import models.judge_rubric as judge_rubric
from common.errors import JudgeError
from models.judge import (
    DEFAULT_RUBRIC,
    UNSURE_HEADLINE,
    AnthropicJudge,
    PairVerdict,
    RuleJudge,
    Verdict,
    build_anthropic_client,
    load_rubric,
    make_judge,
    rubric_hash,
)
from models.judge_anthropic import MAX_RETRY_AFTER
from tests.models.test_judge_support import (
    API_KEY,
    GOOD,
    PROMPT,
    WEAK,
    FakeAPI,
    error,
    prefer,
    responses_in,
    verdict,
)


def test_judge_pair_sends_exactly_two_requests_with_the_responses_swapped():
    api = FakeAPI(default=prefer("Roll back"))
    api.judge(rubric="RUBRIC-TEXT-42").judge_pair(PROMPT, GOOD, WEAK)

    first, second = api.message_calls
    assert len(api.calls) == 2
    assert responses_in(first) == (GOOD, WEAK)
    assert responses_in(second) == (WEAK, GOOD)
    for body in (first, second):
        assert body["model"] == "claude-opus-4-7"
        assert "RUBRIC-TEXT-42" in body["system"][0]["text"]
        assert PROMPT[0]["content"] in body["messages"][0]["content"]
        schema = body["output_config"]["format"]
        assert schema["type"] == "json_schema"
        assert schema["schema"]["properties"]["winner"]["enum"] == ["1", "2", "tie"]


def test_consistent_verdict_maps_screen_positions_back_to_a_and_b():
    # The good answer is B: shown second in order ab (judge says "2"), first in order ba (judge says "1").
    api = FakeAPI(default=prefer("Roll back"))
    pair = api.judge().judge_pair(PROMPT, WEAK, GOOD)

    assert (pair.status, pair.suggestion) == ("ok", "b")
    assert (pair.ab.winner, pair.ba.winner) == ("b", "b")
    assert (pair.ab.position_order, pair.ba.position_order) == ("ab", "ba")
    # The model's "Response 1" in the B-first order is B, and the user sees it named so.
    assert pair.ba.rationale == "Response B is better."
    assert pair.display() == (
        "Claude Opus (claude-opus-4-7) suggests B · confidence 0.8",
        "Response B is better.",
    )


def test_a_verdict_that_follows_the_screen_position_is_unsure_and_suggests_nothing():
    api = FakeAPI().enqueue(verdict("1", "Response 1 is clearer."), verdict("1", "Response 1 is shorter."))
    pair = api.judge().judge_pair(PROMPT, GOOD, WEAK)

    assert pair.status == "unsure"
    assert pair.suggestion is None
    assert (pair.ab.winner, pair.ba.winner) == ("a", "b")
    headline, rationale = pair.display()
    assert headline == UNSURE_HEADLINE == "judge unsure (position-inconsistent)"
    assert "Response A is clearer." in rationale and "Response B is shorter." in rationale


def test_tie_in_both_orders_is_a_consistent_tie():
    api = FakeAPI(default=verdict("tie", "Both are equally good.", 0.6))
    pair = api.judge().judge_pair(PROMPT, GOOD, GOOD)
    assert (pair.status, pair.suggestion) == ("ok", "tie")
    assert pair.display()[0] == "Claude Opus (claude-opus-4-7) suggests a tie · confidence 0.6"


def test_verdict_records_usage_model_rubric_hash_and_confidence():
    api = FakeAPI(default=verdict("2", confidence=0.35))
    judge = api.judge(rubric="my rubric", model="claude-sonnet-4-5")
    v = judge.judge_order(PROMPT, WEAK, GOOD, position_order="ab")

    assert v.winner == "b" and v.confidence == 0.35
    assert v.usage["input_tokens"] == 321 and v.usage["output_tokens"] == 45
    assert v.rubric_hash == rubric_hash("my rubric") != rubric_hash("another rubric")
    assert (v.judge, v.batch_id) == ("anthropic", None)
    assert api.message_calls[0]["model"] == "claude-sonnet-4-5"
    assert judge.label == "Claude Sonnet (claude-sonnet-4-5)"


def test_gold_answer_is_given_to_the_judge_as_a_reference():
    api = FakeAPI(default=verdict())
    api.judge().judge_order(PROMPT, GOOD, WEAK, gold={"severity": "SEV1", "answer": "Severity: SEV1 gold"})
    assert "<reference_answer>\nSeverity: SEV1 gold" in api.message_calls[0]["messages"][0]["content"]


def test_rate_limit_is_retried_after_the_servers_retry_after():
    api = FakeAPI(default=prefer("Roll back")).enqueue(
        error(429, "rate_limit_error", "slow down", {"retry-after": "7"})
    )
    pair = api.judge().judge_pair(PROMPT, WEAK, GOOD)

    assert pair.status == "ok" and pair.suggestion == "b"
    assert api.sleeps == [7.0]
    assert len(api.calls) == 3


def test_retry_after_is_honoured_beyond_max_delay_up_to_a_ceiling_and_backoff_is_exponential():
    api = FakeAPI(default=verdict()).enqueue(
        error(429, "rate_limit_error", headers={"retry-after": "3600"}),
        error(529, "overloaded_error"),
        error(503, "api_error"),
    )
    api.judge(max_delay=5.0, base_delay=1.0).judge_order(PROMPT, GOOD, WEAK)
    # max_delay caps PrefLab's own backoff; the server's word is honoured up to MAX_RETRY_AFTER.
    assert api.sleeps == [MAX_RETRY_AFTER, 2.0, 4.0]


@pytest.mark.parametrize(
    "failure", [httpx2.ConnectError("refused"), httpx2.ReadTimeout("slow")], ids=["connection", "timeout"]
)
def test_connection_errors_and_timeouts_are_retried(failure):
    api = FakeAPI(default=verdict("1")).enqueue(failure)
    v = api.judge().judge_order(PROMPT, GOOD, WEAK)
    assert v.winner == "a"
    assert api.sleeps == [1.0]
    assert len(api.calls) == 2


def test_server_errors_forever_give_a_failed_pair_after_max_attempts():
    api = FakeAPI(default=error(500, "api_error", "internal"))
    pair = api.judge(max_attempts=4).judge_pair(PROMPT, GOOD, WEAK)

    assert pair.status == "failed" and pair.suggestion is None
    assert "after 4 attempts" in pair.error and "HTTP 500" in pair.error
    assert "\n" not in pair.error
    assert api.sleeps == [1.0, 2.0, 4.0]
    # The SDK retries nothing itself, and the pair stops at its first failed order.
    assert len(api.calls) == 4
    headline, rationale = pair.display()
    assert headline.startswith("judge failed: Anthropic judge request failed after 4 attempts")
    assert rationale == ""


def test_judge_order_raises_judge_error_when_it_gives_up():
    api = FakeAPI(default=error(503, "api_error", "unavailable"))
    with pytest.raises(JudgeError, match=r"after 2 attempts: Anthropic API error \(HTTP 503\)"):
        api.judge(max_attempts=2).judge_order(PROMPT, GOOD, WEAK)
    assert len(api.calls) == 2


def test_the_sdk_itself_does_not_retry():
    api = FakeAPI(default=error(500))
    client = api.client()
    assert client.max_retries == 0
    with pytest.raises(JudgeError):
        AnthropicJudge(client, rubric="r", sleep=api.sleep, max_attempts=1).judge_order(PROMPT, GOOD, WEAK)
    assert len(api.calls) == 1 and api.sleeps == []


@pytest.mark.parametrize(
    "key", [API_KEY, "custom-proxy-token-FAKE-KEY-42"], ids=["anthropic-key", "other-key"]
)
def test_rejected_key_fails_at_once_and_never_shows_the_key(caplog, key):
    caplog.set_level(logging.DEBUG)
    # A server that echoes the key back must not leak it through PrefLab either.
    api = FakeAPI(default=error(401, "authentication_error", f"invalid x-api-key: {key}"))
    judge = AnthropicJudge(api.client(key), rubric="r", sleep=api.sleep)
    pair = judge.judge_pair(PROMPT, GOOD, WEAK)

    assert pair.status == "failed"
    assert "ANTHROPIC_API_KEY rejected" in pair.error
    assert len(api.calls) == 1 and api.sleeps == []
    with pytest.raises(JudgeError) as info:
        judge.judge_order(PROMPT, GOOD, WEAK)
    for text in [pair.error, str(info.value), *pair.display(), *(r.getMessage() for r in caplog.records)]:
        assert "FAKE-KEY" not in text


@pytest.mark.parametrize(
    "key", [API_KEY, "custom-proxy-token-FAKE-KEY-42"], ids=["anthropic-key", "other-key"]
)
def test_key_echoed_in_an_error_is_neither_logged_nor_raised(caplog, key):
    caplog.set_level(logging.DEBUG)
    api = FakeAPI(default=error(400, "invalid_request_error", f"bad header {key}"))
    api.enqueue(error(500, "api_error", f"upstream said {key}"))
    with pytest.raises(JudgeError, match=r"HTTP 400\): bad header \[redacted\]") as info:
        AnthropicJudge(api.client(key), rubric="r", sleep=api.sleep, jitter=0.0).judge_order(
            PROMPT, GOOD, WEAK
        )
    assert any("upstream said [redacted]; retrying in 1.0s" in r.getMessage() for r in caplog.records)
    assert all("FAKE-KEY" not in r.getMessage() for r in caplog.records)
    assert "FAKE-KEY" not in str(info.value)


def test_bad_request_fails_without_retry_and_says_what():
    api = FakeAPI(default=error(400, "invalid_request_error", "max_tokens: too large"))
    with pytest.raises(JudgeError, match=r"request rejected \(HTTP 400\): max_tokens: too large"):
        api.judge().judge_order(PROMPT, GOOD, WEAK)
    assert len(api.calls) == 1 and api.sleeps == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (verdict(text="I think Response 1 wins"), "no parseable verdict"),
        (verdict(text='{"winner": "3", "rationale": "x", "confidence": 1}'), "unknown winner"),
        (verdict(stop_reason="refusal", text=""), "refused"),
        (verdict(stop_reason="max_tokens", text='{"rationale": "long'), "cut off at max_tokens=1024"),
    ],
    ids=["prose", "bad-winner", "refusal", "truncated"],
)
def test_unusable_replies_make_the_pair_failed(reply, expected):
    api = FakeAPI(default=reply)
    pair = api.judge().judge_pair(PROMPT, GOOD, WEAK)
    assert pair.status == "failed" and expected in pair.error
    assert len(api.calls) == 1


def test_build_client_reads_the_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    client = build_anthropic_client(timeout=12.0)
    assert (client.api_key, client.max_retries, client.timeout) == (API_KEY, 0, 12.0)


def test_build_client_without_a_key_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(JudgeError, match="ANTHROPIC_API_KEY is not set") as info:
        build_anthropic_client()
    assert "\n" not in str(info.value)


def test_make_judge_auto_picks_claude_only_with_a_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert isinstance(make_judge("auto"), RuleJudge)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    judge = make_judge("auto", model="claude-haiku-4-5", rubric="r")
    assert isinstance(judge, AnthropicJudge)
    assert (judge.model, judge.client.max_retries, judge.rubric) == ("claude-haiku-4-5", 0, "r")
    assert isinstance(make_judge("rule"), RuleJudge)
    with pytest.raises(JudgeError, match="unknown judge 'gpt'"):
        make_judge("gpt")


def test_make_judge_uses_a_given_client_and_sleep():
    api = FakeAPI(default=error(500))
    judge = make_judge("anthropic", client=api.client(), sleep=api.sleep, rubric="r")
    assert judge.judge_pair(PROMPT, GOOD, WEAK).status == "failed"
    # Exponential backoff with up to 10% jitter by default, so several processes do not retry in step.
    assert len(api.sleeps) == 4
    assert all(
        step <= slept <= step * 1.1 for slept, step in zip(api.sleeps, [1.0, 2.0, 4.0, 8.0], strict=True)
    )


def test_default_rubric_comes_from_the_data_file_when_present(monkeypatch, tmp_path):
    monkeypatch.setattr(judge_rubric, "RUBRIC_PATH", tmp_path / "missing.md")
    assert load_rubric(None) == DEFAULT_RUBRIC
    assert "Severity: SEV<1-4>" in DEFAULT_RUBRIC
    shipped = tmp_path / "severity_rubric.md"
    shipped.write_text("# Shipped rubric\nPrefer SEV accuracy.\n")
    monkeypatch.setattr(judge_rubric, "RUBRIC_PATH", shipped)
    assert load_rubric(None) == "# Shipped rubric\nPrefer SEV accuracy.\n"
    judge = AnthropicJudge(FakeAPI().client(), sleep=lambda s: None)
    assert "Prefer SEV accuracy." in judge.system
    assert judge.rubric_hash == rubric_hash("# Shipped rubric\nPrefer SEV accuracy.\n")


def test_the_built_in_rubric_is_the_shipped_one():
    # Without data/ (an installed package) the judge falls back to DEFAULT_RUBRIC: it must send the same text.
    shipped = judge_rubric.RUBRIC_PATH.read_text(encoding="utf-8")
    assert DEFAULT_RUBRIC == shipped == judge_rubric.default_rubric()
    assert judge_rubric.TRIAGE_INSTRUCTION in shipped and judge_rubric.SEVERITY_SCALE in shipped


def test_load_rubric_errors_name_the_path(tmp_path):
    with pytest.raises(JudgeError, match=r"cannot read rubric file .*nope\.md"):
        load_rubric(str(tmp_path / "nope.md"))
    empty = tmp_path / "empty.md"
    empty.write_text("  \n")
    with pytest.raises(JudgeError, match=r"rubric file .*empty\.md is empty"):
        load_rubric(str(empty))
    custom = tmp_path / "custom.md"
    custom.write_text("Be strict.")
    assert load_rubric(str(custom)) == "Be strict."


def _v(winner, order, rationale="r", confidence=0.5):
    return Verdict(winner, rationale, confidence, order, {}, "rule", None, "h")


def test_combine_and_display_cover_every_status():
    ok = PairVerdict.combine(_v("a", "ab", "A wins.", 0.9), _v("a", "ba", "A again.", 0.7))
    assert (ok.status, ok.suggestion, ok.rationale) == ("ok", "a", "A wins.")
    assert ok.display() == ("rule-based judge suggests A · confidence 0.8", "A wins.")

    failed = PairVerdict.combine(_v("a", "ab"), None, error="HTTP 500:\n  boom")
    assert (failed.status, failed.suggestion, failed.error) == ("failed", None, "HTTP 500: boom")
    assert failed.display() == ("judge failed: HTTP 500: boom", "")
    assert PairVerdict.combine(None, None).error == "no verdict for order ab and ba"

    with pytest.raises(ValueError, match="ab slot got a 'ba' verdict"):
        PairVerdict.combine(_v("a", "ba"), _v("a", "ba"))


def test_verdict_rejects_bad_values():
    with pytest.raises(ValueError, match="winner .* got '1'"):
        _v("1", "ab")
    with pytest.raises(ValueError, match="confidence .* got 1.5"):
        _v("a", "ab", confidence=1.5)
