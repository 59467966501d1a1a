"""A scripted OpenAI-compatible server behind the SDK's own transport (httpx2.MockTransport): no network."""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

import httpx2

from models.endpoint import Endpoint, EndpointModel

SERVED = "acme/sft-7b"


class FakeServer:
    """Answers /v1/chat/completions; `enqueue` scripts the next replies, then it answers normally.

    `.calls` holds every request body; `.max_in_flight` the most requests it held at once. With `hold=N` each
    request stays in flight until N requests are (or `linger` seconds pass), then lingers a moment more, so a
    client that sends more than N at once is seen doing it; a bounded one shows exactly N (never more).
    """

    def __init__(
        self, *, served: str = SERVED, hold: int = 0, honours_seed: bool = True, linger: float = 0.2
    ):
        self.served = served
        self.calls: list[dict] = []
        self.headers: list[dict] = []
        self.script: deque = deque()
        self.honours_seed = honours_seed
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        self._hold = hold
        self._linger = linger
        self._changed = threading.Condition(self._lock)
        self._counter = 0

    def enqueue(self, *replies) -> None:
        """Each reply: an int status (with a standard error body), an httpx2.Response, or an exception."""
        self.script.extend(replies)

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def client(self, endpoint: Endpoint | None = None, **kw: Any) -> EndpointModel:
        """The real client talking to this server; with an endpoint, a `common.seams.EndpointFactory`."""
        kw.setdefault("sleep", self.sleeps.append)
        return EndpointModel(
            endpoint or Endpoint("http://gpu-box:8000/v1", self.served),
            http_client=httpx2.Client(transport=self.transport()),
            **kw,
        )

    @property
    def sleeps(self) -> list[float]:
        if not hasattr(self, "_sleeps"):
            self._sleeps: list[float] = []
        return self._sleeps

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content or b"{}")
        with self._lock:
            self.calls.append(body)
            self.headers.append(dict(request.headers))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            reply = self.script.popleft() if self.script else None
            self._changed.notify_all()
            if self._hold:
                self._changed.wait_for(lambda: self._in_flight >= self._hold, timeout=self._linger)
                # A moment more: requests beyond the bound, if the client sends them, arrive while these wait.
                self._changed.wait_for(lambda: self._in_flight > self._hold, timeout=self._linger)
        try:
            if isinstance(reply, Exception):
                raise reply
            if isinstance(reply, httpx2.Response):
                return reply
            if isinstance(reply, int):
                return error(reply, f"scripted {reply}")
            return self.answer(body)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._changed.notify_all()

    def answer(self, body: dict) -> httpx2.Response:
        with self._lock:
            self._counter += 1
            n = self._counter
        last = body["messages"][-1]["content"]
        # A server that ignores `seed` still answers; its text then depends on the call order, not the seed.
        tag = f"seed {body.get('seed')}" if self.honours_seed else f"call {n}"
        text = f"Answer to <{last}> at t={body.get('temperature')} ({tag})"
        return httpx2.Response(
            200,
            json={
                "id": f"cmpl-{n}",
                "object": "chat.completion",
                "created": 0,
                "model": self.served,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "length" if body.get("max_tokens", 99) <= 4 else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
            },
        )


def error(status: int, message: str, **headers) -> httpx2.Response:
    return httpx2.Response(
        status, json={"error": {"message": message, "type": "error", "code": status}}, headers=headers
    )
