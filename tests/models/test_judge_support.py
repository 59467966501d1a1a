"""A fake Anthropic API behind httpx2.MockTransport for the judge tests (no test functions here)."""

from __future__ import annotations

import json
import re
from collections import deque

import httpx2

from models.judge import AnthropicJudge, build_anthropic_client

API_KEY = "sk-ant-api03-FAKE-KEY-never-show-me-0123456789"
BASE = "https://api.anthropic.com"
PROMPT = [{"role": "user", "content": "Triage this incident report: checkout returns 500 for all EU users."}]
GOOD = (
    "Severity: SEV1\nSummary: Checkout is down for all EU users.\nNext steps:\n- Roll back\n- Page payments"
)
WEAK = "Severity: SEV3\nSummary: Some errors.\nNext steps:\n- Investigate\n- Monitor"

_SECTION = re.compile(r"<response_([12])>\n(.*?)\n</response_\1>", re.DOTALL)


def message_json(
    winner="1", rationale="Response 1 is better.", confidence=0.8, *, stop_reason="end_turn", text=None
):
    """A Messages API response body carrying a structured verdict as its single text block."""
    body = json.dumps({"rationale": rationale, "winner": winner, "confidence": confidence})
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-7",
        "content": [{"type": "text", "text": body if text is None else text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 321, "output_tokens": 45, "cache_read_input_tokens": 300},
    }


def verdict(winner="1", rationale="Response 1 is better.", confidence=0.8, **kw) -> httpx2.Response:
    """A 200 response with a structured verdict."""
    return httpx2.Response(200, json=message_json(winner, rationale, confidence, **kw))


def error(status: int, kind: str = "api_error", message: str = "boom", headers=None) -> httpx2.Response:
    """An API error response in the shape the SDK parses."""
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}
    return httpx2.Response(status, json=body, headers=headers)


def responses_in(body: dict) -> tuple[str, str]:
    """(Response 1, Response 2) texts of a Messages request body."""
    text = body["messages"][0]["content"]
    found = dict(_SECTION.findall(text))
    return found["1"], found["2"]


def prefer(marker: str):
    """A handler reply that picks whichever screen position holds `marker`, like a consistent judge."""

    def reply(request: httpx2.Request) -> httpx2.Response:
        first, _ = responses_in(json.loads(request.content))
        winner = "1" if marker in first else "2"
        return verdict(winner, f"Response {winner} is better.", 0.8)

    return reply


class FakeAPI:
    """Records every request; answers POST /v1/messages from a queue, then from `default`."""

    def __init__(self, default=None):
        self.calls: list[httpx2.Request] = []
        self.queue: deque = deque()
        self.default = default
        self.routes: dict[tuple[str, str], object] = {}
        self.sleeps: list[float] = []

    def enqueue(self, *replies) -> FakeAPI:
        """Queue replies (Responses, exceptions to raise, or callables of the request) for /v1/messages."""
        self.queue.extend(replies)
        return self

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        """The MockTransport handler."""
        self.calls.append(request)
        route = self.routes.get((request.method, request.url.path))
        if route is None and (request.method, request.url.path) == ("POST", "/v1/messages"):
            route = self.queue.popleft() if self.queue else self.default
        if route is None:
            return error(404, "not_found_error", f"no fake for {request.method} {request.url.path}")
        if isinstance(route, Exception):
            raise route
        return route(request) if callable(route) else route

    @property
    def message_calls(self) -> list[dict]:
        """Bodies of the POST /v1/messages requests, in order."""
        return [json.loads(r.content) for r in self.calls if r.url.path == "/v1/messages"]

    def sleep(self, seconds: float) -> None:
        """The injected sleep: records, never waits."""
        self.sleeps.append(seconds)

    def client(self, key: str = API_KEY):
        """A real SDK client built the production way, talking to this fake."""
        return build_anthropic_client(
            key, http_client=httpx2.Client(transport=httpx2.MockTransport(self.handler))
        )

    def judge(self, **kw) -> AnthropicJudge:
        """An AnthropicJudge on this fake with the recording sleep and a fixed rubric."""
        kw.setdefault("rubric", "Prefer the correct severity. Then prefer brevity.")
        kw.setdefault("jitter", 0.0)  # exact sleeps; tests of the jitter ask for it
        return AnthropicJudge(self.client(), sleep=self.sleep, **kw)
