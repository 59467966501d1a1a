"""Background judging for the Annotate tab against a fake Anthropic API: failures remembered in the
database with a next-retry time, the pair on screen first, and the server's retry-after honoured."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from annotate.labelling import LabelConfig, LabelService
from annotate.suggestions import Suggester
from store import Store
from tests.models.test_judge_support import GOOD, WEAK, FakeAPI, error, prefer, verdict


class Clock:
    """An injectable clock whose sleep only moves time forward."""

    def __init__(self):
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "db.duckdb")
    yield s
    s.close()


def add_pairs(store, n: int) -> list[int]:
    """n pairs whose prompts read 'incident #<pair id>.' (a fresh database numbers pairs from 1)."""
    model = store.ensure_model("sft", "tiny", [], "sft")
    ids = []
    for i in range(1, n + 1):
        pid = store.add_prompt([{"role": "user", "content": f"Triage incident #{i}."}], "t", "train")
        a = store.add_generation(pid, model.id, GOOD)
        b = store.add_generation(pid, model.id, WEAK)
        ids.append(store.add_pair(pid, a, b))
    assert ids == list(range(1, n + 1))
    return ids


def pair_of(request) -> int:
    return int(
        re.search(r"incident #(\d+)\.", json.loads(request.content)["messages"][0]["content"]).group(1)
    )


def sent_for(api: FakeAPI, pair_id: int) -> int:
    return sum(1 for r in api.calls if r.url.path == "/v1/messages" and pair_of(r) == pair_id)


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "background judging did not finish"
        time.sleep(0.01)


def test_a_rejected_pair_is_sent_once_across_20_votes_then_only_after_its_next_retry_time(store):
    add_pairs(store, 30)
    rejected = 3

    def reply(request):
        if pair_of(request) == rejected:
            return error(400, "invalid_request_error", "prompt is too long")
        return prefer("Roll back")(request)

    api = FakeAPI(default=reply)
    clock = Clock()
    suggester = Suggester(store, api.judge(), hide_fraction=0.0, clock=clock, sleep=clock.sleep)
    labels = LabelService(store, suggester, LabelConfig())
    screen = labels.current("ann")
    assert suggester.wait_idle(20)
    for _ in range(20):
        screen = labels.vote("ann", screen.pair_id, "A", suggestion_shown=True)
        assert suggester.wait_idle(20)
    assert sent_for(api, rejected) == 1
    failure = store.judge_failure(rejected, *suggester.key)
    assert failure.attempts == 1 and "HTTP 400" in failure.error
    assert failure.next_retry_at > clock.now
    # Its failure is shown, not a pending spinner, and nothing is re-sent for showing it.
    assert suggester.get(rejected).status == "failed"
    assert suggester.wait_idle(20) and sent_for(api, rejected) == 1

    clock.now = failure.next_retry_at + 1  # the retry is due: the next vote's prefetch sends it once
    screen = labels.vote("ann", screen.pair_id, "A", suggestion_shown=True)
    assert suggester.wait_idle(20)
    assert sent_for(api, rejected) == 2
    assert store.judge_failure(rejected, *suggester.key).attempts == 2
    for _ in range(3):
        screen = labels.vote("ann", screen.pair_id, "A", suggestion_shown=True)
        assert suggester.wait_idle(20)
    assert sent_for(api, rejected) == 2
    # Every other pair was judged once (two orders), each exactly once.
    assert all(sent_for(api, p) == 2 for p in range(1, 26) if p != rejected)


def test_a_failure_survives_a_restart_of_the_serving_process(tmp_path):
    path = tmp_path / "db.duckdb"
    store = Store.open(path)
    add_pairs(store, 2)
    api = FakeAPI(default=error(400, "invalid_request_error", "prompt is too long"))
    clock = Clock()
    first = Suggester(store, api.judge(), clock=clock, sleep=clock.sleep)
    first.enqueue([1])
    assert first.wait_idle(20) and len(api.calls) == 1
    store.close()
    store = Store.open(path)
    again = Suggester(store, api.judge(), clock=clock, sleep=clock.sleep)
    assert again.get(1).status == "failed"
    again.prefetch_unjudged()
    assert again.wait_idle(20)
    assert sent_for(api, 1) == 1 and sent_for(api, 2) == 1
    store.close()


def test_the_pair_on_screen_is_judged_before_older_queued_ones(store):
    add_pairs(store, 9)
    started, release, order = threading.Event(), threading.Event(), []

    def reply(request):
        order.append(pair_of(request))
        if len(order) == 1:
            started.set()
            release.wait(20)
        return prefer("Roll back")(request)

    api = FakeAPI(default=reply)
    judge = api.judge()
    suggester = Suggester(store, judge)
    suggester.enqueue([1, 2, 3, 4, 5])
    assert started.wait(20)  # pair 1 is being judged; 2-5 wait in the queue
    assert suggester.get(9) is None  # the pair an annotator has on screen: pending
    release.set()
    judged = (judge.name, judge.model, judge.rubric_hash)
    wait_until(lambda: all(len(store.verdicts_for_pair(p, *judged)) == 2 for p in (1, 2, 3, 4, 5, 9)))
    assert list(dict.fromkeys(order)) == [1, 9, 2, 3, 4, 5]


def test_retry_after_beyond_30_seconds_is_honoured_with_jitter():
    api = FakeAPI(default=verdict("1")).enqueue(
        error(429, "rate_limit_error", "slow down", {"retry-after": "45"})
    )
    v = api.judge(jitter=0.1).judge_order([{"role": "user", "content": "x"}], GOOD, WEAK)
    assert v.winner == "a"
    (slept,) = api.sleeps
    assert 45.0 <= slept <= 45.0 * 1.1


def test_a_rate_limit_pauses_all_judging_for_the_servers_retry_after(store):
    add_pairs(store, 2)
    clock = Clock()
    sent_at: list[tuple[int, float]] = []

    def reply(request):
        sent_at.append((pair_of(request), clock.now))
        if len(sent_at) == 1:
            return error(529, "overloaded_error", "overloaded", {"retry-after": "45"})
        return prefer("Roll back")(request)

    api = FakeAPI(default=reply)
    suggester = Suggester(store, api.judge(max_attempts=1), clock=clock, sleep=clock.sleep)
    suggester.enqueue([1, 2])
    assert suggester.wait_idle(20)
    (first_pair, first_at), (second_pair, second_at) = sent_at[0], sent_at[1]
    assert (first_pair, second_pair) == (1, 2)
    assert second_at - first_at >= 45.0  # pair 2 waited out the pause, though it never failed itself
    assert store.judge_failure(1, *suggester.key).next_retry_at >= first_at + 45.0


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "soon"},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after": "-3"},
        {"retry-after": "Wed, 21 Oct 9999999 07:28:00 GMT"},
        {"retry-after": "Mon, 32 Foo 2025 99:99:99 GMT"},
        {"retry-after-ms": "x", "retry-after": ""},
    ],
)
def test_a_malformed_retry_after_header_never_crashes_and_falls_back_to_backoff(headers):
    api = FakeAPI(default=verdict("1")).enqueue(error(429, "rate_limit_error", "slow down", headers))
    v = api.judge().judge_order([{"role": "user", "content": "x"}], GOOD, WEAK)
    assert v.winner == "a"
    assert api.sleeps == [1.0]  # the first step of the exponential backoff
