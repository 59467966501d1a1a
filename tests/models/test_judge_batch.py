"""Message Batches through the SDK against a fake API: submit, poll, stream JSONL results, ingest."""

from __future__ import annotations

import json
from collections import deque

import httpx2
import pytest

from common.errors import JudgeError
from models.judge import BatchItem
from tests.models.test_judge_support import (
    BASE,
    GOOD,
    PROMPT,
    WEAK,
    FakeAPI,
    error,
    message_json,
    responses_in,
)

BATCH_ID = "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"
RESULTS_URL = f"{BASE}/v1/messages/batches/{BATCH_ID}/results"


class FakeBatches:
    """Serves batch create / retrieve / results on a FakeAPI; results follow `outcome(custom_id, params)`."""

    def __init__(self, api: FakeAPI, statuses=("in_progress", "ended"), outcome=None):
        self.api = api
        self.statuses = deque(statuses)
        self.requests: list[dict] = []
        self.outcome = outcome or prefer_marker("Roll back")
        api.routes[("POST", "/v1/messages/batches")] = self.create
        api.routes[("GET", f"/v1/messages/batches/{BATCH_ID}")] = self.retrieve
        api.routes[("GET", f"/v1/messages/batches/{BATCH_ID}/results")] = self.results

    def batch(self, status: str) -> dict:
        """A MessageBatch body; results_url only once it has ended, as the API does."""
        n = len(self.requests)
        ended = status == "ended"
        return {
            "id": BATCH_ID,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {
                "processing": 0 if ended else n,
                "succeeded": n if ended else 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": "2025-01-01T00:00:00Z",
            "expires_at": "2025-01-02T00:00:00Z",
            "ended_at": "2025-01-01T01:00:00Z" if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": RESULTS_URL if ended else None,
        }

    def create(self, request: httpx2.Request) -> httpx2.Response:
        self.requests = json.loads(request.content)["requests"]
        return httpx2.Response(200, json=self.batch("in_progress"))

    def retrieve(self, request: httpx2.Request) -> httpx2.Response:
        status = self.statuses.popleft() if len(self.statuses) > 1 else self.statuses[0]
        return httpx2.Response(200, json=self.batch(status))

    def results(self, request: httpx2.Request) -> httpx2.Response:
        lines = [
            json.dumps({"custom_id": r["custom_id"], "result": self.outcome(r["custom_id"], r["params"])})
            for r in reversed(self.requests)  # the API does not promise request order
        ]
        return httpx2.Response(200, content=("\n".join(lines) + "\n").encode())


def prefer_marker(marker: str):
    """A consistent judge: the screen position holding `marker` wins."""

    def outcome(custom_id: str, params: dict) -> dict:
        first, _ = responses_in(params)
        winner = "1" if marker in first else "2"
        return {"type": "succeeded", "message": message_json(winner, f"Response {winner} is better.")}

    return outcome


def items() -> list[BatchItem]:
    return [
        BatchItem("pair-1", PROMPT, WEAK, GOOD, {"severity": "SEV1"}),
        BatchItem("pair_2", PROMPT, GOOD, WEAK),
        BatchItem("p3", PROMPT, GOOD, WEAK),
    ]


def test_run_batch_submits_two_requests_per_item_polls_and_ingests():
    api = FakeAPI()
    outcomes = prefer_marker("Roll back")

    def outcome(custom_id, params):
        if custom_id == "pair_2-ba":
            return {
                "type": "errored",
                "error": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            }
        if custom_id.startswith("p3-"):
            return {"type": "expired"}
        return outcomes(custom_id, params)

    fake = FakeBatches(api, statuses=("in_progress", "in_progress", "ended"), outcome=outcome)
    progress: list[tuple[int, int]] = []
    results = api.judge().run_batch(items(), poll_interval=60, progress=lambda d, t: progress.append((d, t)))

    ids = [r["custom_id"] for r in fake.requests]
    assert ids == ["pair-1-ab", "pair-1-ba", "pair_2-ab", "pair_2-ba", "p3-ab", "p3-ba"]
    assert responses_in(fake.requests[0]["params"]) == (WEAK, GOOD)
    assert responses_in(fake.requests[1]["params"]) == (GOOD, WEAK)
    assert fake.requests[0]["params"]["output_config"]["format"]["type"] == "json_schema"
    assert "<reference_answer>\nSEV1" in fake.requests[0]["params"]["messages"][0]["content"]
    # Polled until ended: two in_progress answers, each followed by one poll_interval sleep.
    assert api.sleeps == [60, 60]
    assert progress == [(0, 6), (0, 6), (6, 6)]

    assert set(results) == {"pair-1", "pair_2", "p3"}
    ok = results["pair-1"]
    assert (ok.status, ok.suggestion) == ("ok", "b")
    assert ok.ab.batch_id == ok.ba.batch_id == BATCH_ID
    assert ok.ba.rationale == "Response B is better."

    errored = results["pair_2"]
    assert (errored.status, errored.suggestion) == ("failed", None)
    assert errored.ab is not None and errored.ab.winner == "a" and errored.ba is None
    assert errored.error == "ba: errored (overloaded_error: Overloaded)"

    expired = results["p3"]
    assert expired.status == "failed"
    assert "ab: expired" in expired.error and "ba: expired" in expired.error
    assert expired.display()[0].startswith("judge failed: ab: expired")


def test_inconsistent_batch_verdict_is_unsure():
    api = FakeAPI()

    def always_first(custom_id, params):
        return {"type": "succeeded", "message": message_json("1", "Response 1 reads better.")}

    FakeBatches(api, statuses=("ended",), outcome=always_first)
    results = api.judge().run_batch(items()[:1])
    assert results["pair-1"].status == "unsure" and results["pair-1"].suggestion is None
    assert api.sleeps == []


def test_submit_status_and_results_separately():
    api = FakeAPI()
    FakeBatches(api, statuses=("in_progress", "in_progress", "ended"))
    judge = api.judge()
    batch_id = judge.submit_batch(items())
    assert batch_id == BATCH_ID
    assert judge.batch_status(batch_id) == "in_progress"
    with pytest.raises(JudgeError, match=rf"{BATCH_ID} has not ended yet \(in_progress\)"):
        judge.batch_results(batch_id)
    assert judge.batch_status(batch_id) == "ended"
    results = judge.batch_results(batch_id)
    assert {k: v.suggestion for k, v in results.items()} == {"pair-1": "b", "pair_2": "a", "p3": "a"}


def test_batch_calls_are_retried_with_the_injected_sleep():
    api = FakeAPI()
    fake = FakeBatches(api, statuses=("ended",))
    flaky = deque([error(529, "overloaded_error", "Overloaded", {"retry-after": "3"})])
    retrieve = api.routes[("GET", f"/v1/messages/batches/{BATCH_ID}")]
    api.routes[("GET", f"/v1/messages/batches/{BATCH_ID}")] = lambda r: (
        flaky.popleft() if flaky else retrieve(r)
    )

    results = api.judge().run_batch(items()[:1], poll_interval=30)
    assert api.sleeps == [3.0]
    assert results["pair-1"].status == "ok"
    assert len(fake.requests) == 2


def test_run_batch_gives_up_after_its_timeout_naming_the_batch():
    api = FakeAPI()
    FakeBatches(api, statuses=("in_progress",))
    with pytest.raises(JudgeError, match=f"{BATCH_ID} still in_progress after 90s"):
        api.judge().run_batch(items(), poll_interval=30, timeout=90)
    assert api.sleeps == [30, 30, 30]


def test_rejected_batch_submission_is_one_line():
    api = FakeAPI()
    api.routes[("POST", "/v1/messages/batches")] = error(401, "authentication_error", "invalid x-api-key")
    with pytest.raises(JudgeError, match=r"Message Batch submission failed: ANTHROPIC_API_KEY rejected"):
        api.judge().submit_batch(items())
    assert api.sleeps == []


def test_batch_item_ids_must_fit_the_api_pattern():
    assert BatchItem("x" * 61, PROMPT, "a", "b").custom_id == "x" * 61
    for bad in ["x" * 62, "", "pair 1", "pair/1", "pär"]:
        with pytest.raises(ValueError, match="custom_id must be 1-61"):
            BatchItem(bad, PROMPT, "a", "b")


def test_empty_or_duplicate_batches_are_refused_before_any_request():
    api = FakeAPI()
    FakeBatches(api)
    with pytest.raises(JudgeError, match="batch would be empty"):
        api.judge().submit_batch([])
    with pytest.raises(JudgeError, match="duplicate batch item id 'p3'"):
        api.judge().submit_batch([BatchItem("p3", PROMPT, "a", "b"), BatchItem("p3", PROMPT, "c", "d")])
    assert api.calls == []
