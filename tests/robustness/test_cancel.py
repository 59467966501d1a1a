"""Every job kind the UI starts can be cancelled from the UI (admin only), also while it waits for the device."""

from __future__ import annotations

import pytest

from tests.seed import seed_pairs
from tests.serving import free_port


def _until_cancelled(handle) -> dict:
    import time

    deadline = time.monotonic() + 60
    while not handle.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    return {}


@pytest.fixture
def served(tmp_path):
    from common.context import AppConfig, build_context
    from models.judge import RuleJudge
    from webui.app import launch_app

    home = tmp_path / "home"
    seed_pairs(home, 2)
    ctx = build_context(AppConfig(home=home), judge=RuleJudge())
    demo = launch_app(ctx, host="127.0.0.1", port=free_port(), block=False)
    from gradio_client import Client

    client = Client(demo.local_url, verbose=False, analytics_enabled=False, download_files=False)
    try:
        yield ctx, client
    finally:
        client.close()
        demo.close()
        ctx.store.close()


@pytest.mark.parametrize(
    ("kind", "params", "endpoint"),
    [
        ("eval", {"variants": ["base", "sft"]}, "/eval_cancel"),
        ("eval", {"arena": ["base", "sft"], "prompts": 2}, "/arena_cancel"),
        ("train", {"sft": True}, "/train_sft_cancel"),
    ],
)
def test_the_tab_cancels_its_running_job(served, kind, params, endpoint):
    ctx, client = served
    job_id = ctx.jobs.start(kind, params, _until_cancelled)
    reply = client.predict(api_name=endpoint)
    assert f"#{job_id}" in str(reply)
    ctx.jobs.wait(job_id, timeout=60)
    assert ctx.store.get_job(job_id).status == "cancelled"


def test_cancelling_the_arena_leaves_a_running_eval_alone(served):
    ctx, client = served
    eval_job = ctx.jobs.start("eval", {"variants": ["base", "sft"]}, _until_cancelled)
    assert "Nothing" in str(client.predict(api_name="/arena_cancel"))
    assert ctx.jobs.running(eval_job)
    ctx.jobs.cancel(eval_job)
    ctx.jobs.wait(eval_job, timeout=60)


def test_an_annotator_cannot_cancel_jobs(tmp_path):
    from annotate.jobs import JobRunner, cancel_job
    from common.access import Access, Role, User
    from common.errors import PermissionDeniedError
    from store import Store

    class Ctx:
        store = Store.open(tmp_path / "db.duckdb")
        jobs = JobRunner(store)
        access = Access((User("ann", "pw", Role.ANNOTATOR), User("boss", "pw", Role.ADMIN)))

    job_id = Ctx.jobs.start("eval", {}, _until_cancelled)
    with pytest.raises(PermissionDeniedError):
        cancel_job(Ctx, "ann", "eval")
    assert Ctx.jobs.running(job_id)
    assert cancel_job(Ctx, "boss", "eval") == job_id
    Ctx.jobs.wait(job_id, timeout=60)
    assert Ctx.store.get_job(job_id).status == "cancelled"
    Ctx.store.close()
