"""The endpoint client through the SDK's own transport: retries, clear failures, bounded concurrency, keys."""

from __future__ import annotations

import httpx2
import pytest

from models.endpoint import Endpoint, EndpointError, check_api_key_env, normalize_url
from models.sampling import SamplingParams
from tests.models.fake_openai import SERVED, FakeServer, error

CHAT = [{"role": "user", "content": "Triage: the api is slow"}]
PARAMS = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=16)


def test_a_5xx_is_retried_with_backoff_then_the_answer_kept():
    server = FakeServer()
    server.enqueue(503, 502)
    client = server.client()
    out = client.complete(CHAT, PARAMS, seed=1234)
    assert len(server.calls) == 3
    assert len(server.sleeps) == 2 and server.sleeps[1] > 0
    assert out.text.startswith("Answer to <Triage")
    assert out.attempts == 3
    assert (out.served_model, out.finish_reason, out.n_tokens, out.prompt_tokens) == (SERVED, "stop", 7, 12)


def test_429_waits_at_least_the_servers_retry_after():
    server = FakeServer()
    server.enqueue(error(429, "slow down", **{"retry-after": "7"}))
    server.client().complete(CHAT, PARAMS, seed=1)
    assert server.sleeps and server.sleeps[0] >= 7


def test_a_timeout_is_retried_then_reported_in_one_line():
    server = FakeServer()
    server.enqueue(*[httpx2.ReadTimeout("slow") for _ in range(3)])
    with pytest.raises(EndpointError, match="did not answer in time.*after 3 attempts") as info:
        server.client(max_attempts=3).complete(CHAT, PARAMS, seed=1)
    assert len(server.calls) == 3
    assert "\n" not in str(info.value)


def test_a_server_that_is_down_says_so():
    server = FakeServer()
    server.enqueue(*[httpx2.ConnectError("refused") for _ in range(2)])
    with pytest.raises(EndpointError, match=r"http://gpu-box:8000/v1 is not reachable \(is it running\?\)"):
        server.client(max_attempts=2).complete(CHAT, PARAMS, seed=1)


def test_a_model_the_server_does_not_serve_fails_at_once():
    server = FakeServer()
    server.enqueue(error(404, "The model `acme/sft-7b` does not exist."))
    with pytest.raises(EndpointError, match="does not serve model 'acme/sft-7b'.*--served-model"):
        server.client().complete(CHAT, PARAMS, seed=1)
    assert len(server.calls) == 1 and not server.sleeps


def test_a_pinned_server_asked_for_another_model_is_not_served_either():
    # `transformers serve MODEL` answers 400 naming the requested model.
    server = FakeServer()
    server.enqueue(error(400, "Server is pinned to '/models/x'; requested 'acme/sft-7b'."))
    with pytest.raises(EndpointError, match="does not serve model"):
        server.client().complete(CHAT, PARAMS, seed=1)


def test_a_prompt_beyond_the_context_window_fails_at_once_with_a_hint():
    server = FakeServer()
    message = (
        "This model's maximum context length is 2048 tokens. However, you requested 2100 tokens "
        "(2084 in the messages, 16 in the completion)."
    )
    server.enqueue(error(400, message))
    with pytest.raises(EndpointError, match="does not fit the context window.*--max-new-tokens"):
        server.client().complete(CHAT, PARAMS, seed=1)
    assert len(server.calls) == 1


def test_a_server_that_refuses_seed_is_asked_again_without_it_and_that_is_recorded():
    server = FakeServer()
    server.enqueue(error(400, "Unrecognized request argument supplied: seed"))
    client = server.client()
    first = client.complete(CHAT, PARAMS, seed=99)
    second = client.complete(CHAT, PARAMS, seed=100)
    assert "seed" in server.calls[0] and "seed" not in server.calls[1] and "seed" not in server.calls[2]
    assert first.server_seed is None and second.server_seed is None
    assert first.seed == 99  # the cell's own seed is still what the row records


def test_each_response_is_its_own_request_with_its_own_seed_and_sampling():
    server = FakeServer()
    client = server.client(concurrency=2)
    params = [SamplingParams(0.7, 0.9, 16), SamplingParams(1.2, 0.9, 16), SamplingParams(0.0, 1.0, 8)]
    outcome = client.generate([CHAT] * 3, params, seeds=[2**40 + 5, 6, 7])
    assert outcome.error is None and outcome.done == 3
    assert len(server.calls) == 3
    assert all("n" not in c for c in server.calls)
    by_temp = {c["temperature"]: c for c in server.calls}
    assert by_temp[1.2]["seed"] == 6 and by_temp[0.0]["max_tokens"] == 8
    assert by_temp[0.7]["seed"] == 5  # 31-bit on the wire; llama.cpp keeps seeds in an int32
    assert {c["model"] for c in server.calls} == {SERVED}


def test_concurrency_is_bounded():
    server = FakeServer(hold=3)
    outcome = server.client(concurrency=3).generate([CHAT] * 10, PARAMS, seeds=list(range(10)))
    assert outcome.done == 10
    assert len(server.calls) == 10
    assert server.max_in_flight == 3


def test_a_permanent_failure_stops_sending_and_keeps_what_landed():
    server = FakeServer()
    server.enqueue(None, error(404, "no such model"))
    landed = []
    outcome = server.client(concurrency=1).generate(
        [CHAT] * 5, PARAMS, seeds=list(range(5)), on_result=lambda i, g: landed.append(i)
    )
    assert len(server.calls) == 2
    assert landed == [0] and outcome.done == 1
    assert "does not serve model" in str(outcome.error)


def test_a_stop_request_sends_nothing_more():
    server = FakeServer()
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(server.calls) >= 2

    outcome = server.client(concurrency=1).generate(
        [CHAT] * 6, PARAMS, seeds=list(range(6)), should_stop=stop
    )
    assert len(server.calls) == 2 and outcome.done == 2 and outcome.error is None


def test_without_a_named_variable_no_key_from_the_environment_is_sent(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-secret")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin")
    server = FakeServer()
    server.client().complete(CHAT, PARAMS, seed=1)
    headers = server.headers[0]
    assert headers["authorization"] == "Bearer EMPTY"
    assert "openai-organization" not in headers
    assert "sk-" not in repr(headers)


def test_the_named_key_is_sent_and_never_shown_in_a_message(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "sk-vllm-very-secret")
    server = FakeServer()
    server.enqueue(error(400, "bad key sk-vllm-very-secret for this model"))
    client = server.client(Endpoint("http://gpu-box:8000/v1", SERVED, api_key_env="VLLM_API_KEY"))
    with pytest.raises(EndpointError) as info:
        client.complete(CHAT, PARAMS, seed=1)
    assert server.headers[0]["authorization"] == "Bearer sk-vllm-very-secret"
    assert "sk-vllm-very-secret" not in str(info.value)


def test_a_named_variable_that_is_not_set_is_one_line(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(EndpointError, match="set the VLLM_API_KEY variable"):
        FakeServer().client(Endpoint("http://gpu-box:8000/v1", SERVED, api_key_env="VLLM_API_KEY"))


@pytest.mark.parametrize(
    "name",
    [
        "HF_TOKEN",
        "ANTHROPIC_API_KEY",
        "MY_HF_API_KEY",
        "HUGGINGFACE_API_KEY",
        "vllm_api_key",
        "SECRET",
        "A" * 70,
    ],
)
def test_key_variables_outside_the_allow_list_are_refused(name):
    with pytest.raises(EndpointError):
        check_api_key_env(name)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "VLLM_API_KEY", "TOGETHER_API_KEY"])
def test_key_variables_on_the_allow_list_pass(name):
    assert check_api_key_env(name) == name


def test_urls_are_normalised_and_never_carry_secrets():
    assert normalize_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalize_url("https://h.example/v1/") == "https://h.example/v1"
    for bad in ["ftp://h/v1", "http://user:pw@h/v1", "http://h/v1?key=abc", "not a url", "http:///v1"]:
        with pytest.raises(EndpointError):
            normalize_url(bad)
