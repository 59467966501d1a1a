"""A killed `judge --batch` resumes its Message Batch (stored as a job the moment it exists) instead of paying twice."""

from __future__ import annotations

import pytest

from annotate.judging import judge_pending
from annotate.suggestions import Suggester
from models.judge import AnthropicJudge
from store import Store
from tests.models.test_judge_batch import BATCH_ID, FakeBatches
from tests.models.test_judge_support import GOOD, WEAK, FakeAPI

RUBRIC = "Prefer the correct severity. Then prefer brevity."


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def add_pairs(store, n: int) -> None:
    model = store.ensure_model("sft", "tiny", [], "sft")
    for i in range(n):
        pid = store.add_prompt([{"role": "user", "content": f"Triage incident {i}."}], "t", "train")
        a = store.add_generation(pid, model.id, f"{WEAK} {i}")
        b = store.add_generation(pid, model.id, f"{GOOD} {i}")
        store.add_pair(pid, a, b)


def creates(api: FakeAPI) -> int:
    return sum(1 for r in api.calls if (r.method, r.url.path) == ("POST", "/v1/messages/batches"))


def polls(api: FakeAPI) -> int:
    return sum(1 for r in api.calls if (r.method, r.url.path) == ("GET", f"/v1/messages/batches/{BATCH_ID}"))


def test_a_killed_batch_run_resumes_the_same_batch_and_creates_no_new_one(tmp_path):
    path = tmp_path / "db.duckdb"
    store = Store.open(path)
    add_pairs(store, 3)
    api = FakeAPI()
    FakeBatches(api, statuses=("in_progress", "in_progress", "ended"))

    def killed(seconds: float) -> None:  # the first wait between polls: the batch exists by now
        raise Killed

    with pytest.raises(Killed):
        judge_pending(Suggester(store, AnthropicJudge(api.client(), rubric=RUBRIC, sleep=killed)), batch=True)
    assert creates(api) == 1 and polls(api) == 1
    store.close()

    store = Store.open(path)  # a new process: the old one left its job behind
    before = polls(api)
    report = judge_pending(Suggester(store, api.judge(rubric=RUBRIC)), batch=True, poll_interval=1)
    assert creates(api) == 1  # paid once
    assert polls(api) > before  # the same batch id was polled again
    assert report.judged == 3 and report.consistent == 3 and report.batch_id == BATCH_ID
    frame = store.verdict_frame()
    assert len(frame) == 6 and set(frame["batch_id"]) == {BATCH_ID}
    assert set(frame.groupby("pair_id")["winner"].agg(set).map(frozenset)) == {frozenset({"b"})}
    job = store.latest_job("judge_batch")
    assert job.status == "done" and job.result["batch_id"] == BATCH_ID

    # Once ingested, nothing is resumed or submitted again.
    again = judge_pending(Suggester(store, api.judge(rubric=RUBRIC)), batch=True, poll_interval=1)
    assert again.judged == 0 and creates(api) == 1
    store.close()
