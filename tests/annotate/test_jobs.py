"""The job runner: per-kind time limits, one heavy job per device (the next one visibly waits), cancelling."""

from __future__ import annotations

import threading
import time

import pytest

from annotate.jobs import DEFAULT_TIME_LIMITS, HEAVY_KINDS, JobRunner, job_line
from common.vocab import JobKind, values


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _until(predicate, timeout: float = 30.0) -> None:
    """Wait for a condition another thread brings about (a generous bound, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_a_job_past_its_time_limit_is_stopped_and_says_why(store):
    clock = FakeClock()
    runner = JobRunner(store, time_limits={"generate": 3600}, clock=clock)
    started = threading.Event()

    def body(handle) -> dict:
        started.set()
        while not handle.cancelled:
            time.sleep(0.01)
        return {"stopped": True}

    job_id = runner.start("generate", {}, body)
    assert started.wait(30)
    clock.now = 3599.0
    time.sleep(0.05)
    assert store.get_job(job_id).status == "running"
    clock.now = 3601.0
    runner.wait(job_id, timeout=30)
    job = store.get_job(job_id)
    assert job.status == "cancelled"
    assert "time limit" in job.error and "1 h" in job.error and "\n" not in job.error


def test_a_job_that_raises_after_its_time_limit_is_cancelled_not_crashed(store):
    from common.errors import PrefLabError

    clock = FakeClock()
    runner = JobRunner(store, time_limits={"eval": 60}, clock=clock)

    def body(handle) -> dict:
        clock.now = 61.0
        assert handle.cancelled
        raise PrefLabError("eval cancelled while generating; nothing stored")

    job_id = runner.start("eval", {}, body)
    runner.wait(job_id, timeout=30)
    job = store.get_job(job_id)
    assert job.status == "cancelled" and "time limit" in job.error


def test_time_limits_are_positive_numbers(store):
    from common.errors import UserInputError

    with pytest.raises(UserInputError):
        JobRunner(store, time_limits={"generate": 0})
    with pytest.raises(UserInputError):
        JobRunner(store, time_limits={"nonsense": 10})


def test_every_job_kind_has_a_time_limit_and_plain_string_keys_override_it(store):
    assert sorted(DEFAULT_TIME_LIMITS) == sorted(values(JobKind))
    assert HEAVY_KINDS <= set(JobKind)
    runner = JobRunner(store, time_limits={"judge": 5})
    assert runner.time_limits[JobKind.JUDGE] == 5 and len(runner.time_limits) == len(JobKind)


def test_the_second_heavy_job_waits_for_the_device_until_the_first_finishes(store):
    runner = JobRunner(store)
    release = threading.Event()
    ran: list[str] = []

    def first(handle) -> dict:
        ran.append("first")
        release.wait(30)
        return {}

    def second(handle) -> dict:
        ran.append("second")
        return {}

    a = runner.start("generate", {}, first)
    _until(lambda: ran == ["first"])
    b = runner.start("eval", {}, second)
    _until(lambda: runner.waiting_for(b) == a)
    job = store.get_job(b)
    assert job.status == "queued" and ran == ["first"]
    assert "waiting for the device" in job_line(job, runner) and f"#{a}" in job_line(job, runner)
    release.set()
    runner.wait(a, timeout=30)
    runner.wait(b, timeout=30)
    assert ran == ["first", "second"]
    assert store.get_job(b).status == "done" and runner.waiting_for(b) is None


def test_a_job_cancelled_while_waiting_for_the_device_never_runs(store):
    runner = JobRunner(store)
    release = threading.Event()
    ran: list[str] = []
    a = runner.start("generate", {}, lambda h: (ran.append("a"), release.wait(30), {})[-1])
    _until(lambda: ran == ["a"])
    b = runner.start("train", {}, lambda h: (ran.append("b"), {})[-1])
    _until(lambda: runner.waiting_for(b) == a)
    assert runner.cancel(b)
    runner.wait(b, timeout=30)
    release.set()
    runner.wait(a, timeout=30)
    assert ran == ["a"] and store.get_job(b).status == "cancelled"


def test_light_jobs_do_not_wait_for_the_device(store):
    runner = JobRunner(store)
    release = threading.Event()
    ran: list[str] = []
    a = runner.start("generate", {}, lambda h: (ran.append("a"), release.wait(30), {})[-1])
    _until(lambda: ran == ["a"])
    b = runner.start("judge", {}, lambda h: (ran.append("judge"), {})[-1])
    runner.wait(b, timeout=30)
    assert store.get_job(b).status == "done" and ran == ["a", "judge"]
    release.set()
    runner.wait(a, timeout=30)


def test_cancel_latest_finds_the_active_job_of_a_kind(store):
    runner = JobRunner(store)
    a = runner.start("eval", {"arena": ["sft", "dpo"]}, lambda h: (_until(lambda: h.cancelled), {})[-1])
    assert runner.cancel_latest("eval", where=lambda job: not job.params.get("arena")) is None
    assert runner.cancel_latest("eval", where=lambda job: bool(job.params.get("arena"))) == a
    runner.wait(a, timeout=30)
    assert store.get_job(a).status == "cancelled"
    assert runner.cancel_latest("eval") is None


def test_a_plain_cancel_is_not_reported_as_a_time_limit(store):
    runner = JobRunner(store)

    def body(handle) -> dict:
        handle.cancel_event.set()  # what the DPO job does when its worker reports "cancelled"
        return {}

    job_id = runner.start("train", {}, body)
    runner.wait(job_id, timeout=30)
    job = store.get_job(job_id)
    assert job.status == "cancelled" and not job.error
