"""Votes never fail behind slow events: no global queue cap, a few waiting calls per user and event instead."""

from __future__ import annotations

import threading

import pytest

from tests.seed import seed_pairs
from tests.serving import free_port

N_SLOW = 300


@pytest.fixture
def blocked_server(tmp_path, monkeypatch):
    """The real app served in-process, with *Load the demo prompts* blocked until the test releases it."""
    from annotate.data_service import DataService
    from common.context import AppConfig, build_context
    from models.judge import RuleJudge
    from webui.app import launch_app

    home = tmp_path / "home"
    seed_pairs(home, 4)
    release = threading.Event()

    def slow_load_demo(self, *, user=None):
        from common.errors import UserInputError

        release.wait(120)
        raise UserInputError("released by the test")  # shown as a warning: no traceback per waiting call

    monkeypatch.setattr(DataService, "load_demo", slow_load_demo)
    ctx = build_context(AppConfig(home=home), judge=RuleJudge())
    demo = launch_app(ctx, host="127.0.0.1", port=free_port(), block=False)
    try:
        yield demo, release, ctx
    finally:
        release.set()
        demo.close()
        ctx.store.close()


def _join(url: str, fn_index: int, session: str):
    import httpx

    body = {"data": [], "event_data": None, "fn_index": fn_index, "trigger_id": None, "session_hash": session}
    return httpx.post(url + "gradio_api/queue/join", json=body, timeout=30)


def test_a_vote_goes_through_while_300_slow_calls_wait(blocked_server):
    from gradio_client import Client

    demo, release, ctx = blocked_server
    url = demo.local_url
    slow = next(i for i, fn in demo.fns.items() if fn.api_name == "load_demo")
    # 300 people press the slow button once each: every call waits behind the first, which never ends.
    refused = [
        a.text for a in (_join(url, slow, f"session-{i}") for i in range(N_SLOW)) if a.status_code != 200
    ]

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    try:
        screen = client.predict("alice", False, api_name="/next_pair")
        assert "pair #" in str(screen[0])
        after = client.submit("alice", False, "", "", api_name="/vote_a").result(timeout=60)
        assert after is not None
    finally:
        client.close()
    assert not release.is_set()  # the slow calls are still waiting
    assert ctx.store.counts()["labels"] == 1
    assert refused == []


def test_one_user_cannot_queue_more_than_a_few_calls_of_one_event(blocked_server):
    demo, _release, _ctx = blocked_server
    url = demo.local_url
    slow = next(i for i, fn in demo.fns.items() if fn.api_name == "load_demo")
    answers = [_join(url, slow, "one-session") for _ in range(12)]
    accepted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert 1 <= len(accepted) <= 8 and refused, [a.status_code for a in answers]
    detail = refused[0].json()["detail"]
    assert "waiting" in detail and "\n" not in detail
    # Another user is not held back by the first one's calls.
    assert _join(url, slow, "another-session").status_code == 200
