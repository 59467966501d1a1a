"""Generation, arena and eval responses through a variant's endpoint: stored cell by cell, resumable, no local
model loaded, no device gate; registering endpoints is an admin action and keeps keys out of the database."""

from __future__ import annotations

import threading

import pytest

from annotate.generation import GenerateConfig, cell_seed, plan_cells, run_generation
from annotate.models_service import VariantSpec, register_variant, uses_local_device
from common.access import Access, Role, User
from common.errors import PermissionDeniedError
from common.serving import Serving
from evaluate.responses import ResponseParams, ensure_responses
from models.endpoint import EndpointError
from tests.models.fake_openai import SERVED, FakeServer, error

URL = "http://gpu-box:8000/v1"


class Ctx:
    def __init__(self, store, access=None):
        self.store = store
        self.access = access or Access()


def _factory(server: FakeServer, built: list | None = None):
    def make(endpoint, *, concurrency):
        client = server.client(endpoint, concurrency=concurrency)
        if built is not None:
            built.append(client)
        return client

    return make


def _cfg(**kw) -> GenerateConfig:
    return GenerateConfig(**{"variant": "served", "limit": 3, "max_new_tokens": 16, **kw})


@pytest.fixture
def served_store(sft_store):
    register_variant(Ctx(sft_store), None, VariantSpec("served", serving=Serving(URL, SERVED, revision="r7")))
    return sft_store


def _rows(store, name="served"):
    model_id = store.get_model(name).id
    return (
        store.cursor()
        .execute(
            "SELECT prompt_id, cell, params, seed, n_tokens, seconds FROM generations WHERE model_id = ? "
            "ORDER BY id",
            [model_id],
        )
        .fetchall()
    )


def test_an_endpoint_variant_generates_one_request_per_cell_and_stores_what_the_server_reported(
    served_store, tiny_pool
):
    import json

    server = FakeServer()
    cfg = _cfg(per_prompt=4, concurrency=3)
    result = run_generation(served_store, tiny_pool, cfg, endpoints=_factory(server))
    assert len(server.calls) == 3 * 4 == result.generated
    assert tiny_pool.loader.calls == []  # no local model loaded
    assert result.pairs + result.near_identical == 3 * 2
    rows = _rows(served_store)
    assert len({(p, c) for p, c, *_ in rows}) == 12
    prompts = {p.id: p for p in served_store.list_prompts(split="train")}
    cells = {c.key(cfg): c for c in plan_cells(cfg)}
    for prompt_id, cell, params, seed, n_tokens, seconds in rows:
        params = json.loads(params)
        assert seed == cell_seed(cfg.seed, prompts[prompt_id].content_hash, cell)
        assert params["temperature"] == cells[cell].temperature and params["max_new_tokens"] == 16
        assert params["served_model"] == SERVED and params["revision"] == "r7"
        assert params["finish_reason"] == "stop" and params["completion_tokens"] == n_tokens == 7
        assert params["via"] == "endpoint" and seconds is not None and params["latency_s"] >= 0
    assert served_store.get_model("served").fingerprint == f"served:{SERVED}@r7"
    assert {c["seed"] for c in server.calls} == {seed & 0x7FFFFFFF for *_, seed, _, _ in rows}


def test_a_variant_with_local_weights_and_an_endpoint_generates_at_the_endpoint(sft_store, tiny_pool):
    register_variant(Ctx(sft_store), None, VariantSpec("sft", serving=Serving(URL, SERVED)))
    server = FakeServer()
    run_generation(sft_store, tiny_pool, _cfg(variant="sft", limit=2), endpoints=_factory(server))
    assert len(server.calls) == 4
    assert tiny_pool.loader.calls == []
    assert sft_store.get_model("sft").fingerprint is None  # the local weights' fingerprint is not overwritten


def test_resume_after_a_failure_regenerates_nothing_already_stored(served_store, tiny_pool):
    server = FakeServer()
    # Cell 4 of 12 fails for good (a 503 on every attempt); the three before it land and stay.
    server.enqueue(None, None, None, *[503] * 5)
    with pytest.raises(EndpointError, match="answered 503.*gave up after 5 attempts"):
        run_generation(served_store, tiny_pool, _cfg(per_prompt=4, concurrency=1), endpoints=_factory(server))
    stored = _rows(served_store)
    assert len(stored) == 3
    first_cells = {(p, c) for p, c, *_ in stored}

    again = FakeServer()
    result = run_generation(served_store, tiny_pool, _cfg(per_prompt=4), endpoints=_factory(again))
    assert result.reused == 3 and result.generated == 9 == len(again.calls)
    rows = _rows(served_store)
    assert len(rows) == 12 == len({(p, c) for p, c, *_ in rows})
    assert first_cells <= {(p, c) for p, c, *_ in rows}
    assert len({m["seed"] for m in again.calls}) == 9  # each cell its own seed: none asked twice
    assert not {m["seed"] for m in again.calls} & {m["seed"] for m in server.calls[:3]}


def test_a_server_that_ignores_seed_is_still_resumed_without_new_requests(served_store, tiny_pool):
    server = FakeServer(honours_seed=False)
    run_generation(served_store, tiny_pool, _cfg(), endpoints=_factory(server))
    texts = [t for (t,) in served_store.cursor().execute("SELECT text FROM generations").fetchall()]
    assert len(texts) == 6 and all("call " in t for t in texts)
    again = FakeServer(honours_seed=False)
    result = run_generation(served_store, tiny_pool, _cfg(), endpoints=_factory(again))
    assert again.calls == [] and result.generated == 0 and result.reused == 6


def test_a_cancelled_job_stops_sending_and_the_next_run_finishes_it(served_store, tiny_pool):
    server = FakeServer()
    stop = threading.Event()
    result = run_generation(
        served_store,
        tiny_pool,
        _cfg(per_prompt=4, concurrency=1),
        endpoints=_factory(server),
        progress=lambda done, total: stop.set() if done >= 5 else None,
        should_stop=stop.is_set,
    )
    assert result.generated == 5 == len(server.calls) == len(_rows(served_store))
    again = FakeServer()
    run_generation(served_store, tiny_pool, _cfg(per_prompt=4), endpoints=_factory(again))
    assert len(again.calls) == 7 and len(_rows(served_store)) == 12


def test_arena_and_eval_responses_come_from_the_endpoint(served_store, tiny_pool):
    prompts = served_store.list_prompts(split="heldout")
    server = FakeServer()
    params = ResponseParams(max_new_tokens=16, concurrency=2)
    have = ensure_responses(served_store, tiny_pool, "served", prompts, params, endpoints=_factory(server))
    assert set(have) == {p.id for p in prompts} and len(server.calls) == 2
    assert tiny_pool.loader.calls == []
    again = FakeServer()
    assert (
        ensure_responses(served_store, tiny_pool, "served", prompts, params, endpoints=_factory(again))
        == have
    )
    assert again.calls == []


def test_a_prompt_too_long_for_the_server_stops_the_job_in_one_line(served_store, tiny_pool):
    server = FakeServer()
    server.enqueue(error(400, "maximum context length is 512 tokens"))
    with pytest.raises(EndpointError, match="does not fit the context window") as info:
        run_generation(served_store, tiny_pool, _cfg(concurrency=1), endpoints=_factory(server))
    assert "\n" not in str(info.value)


def test_endpoint_jobs_skip_the_device_gate_and_local_ones_do_not(served_store):
    assert uses_local_device(served_store, ["served"]) is False
    assert uses_local_device(served_store, ["served", "sft"]) is True

    from annotate.jobs import JobRunner

    runner = JobRunner(served_store)
    hold = threading.Event()
    local = runner.start("train", {}, lambda h: hold.wait(10) and {})
    served = runner.start("generate", {}, lambda h: {"ok": True}, local=False)
    runner.wait(served, 10)
    assert served_store.get_job(served).status == "done"  # ran while the device was busy
    queued = runner.start("eval", {}, lambda h: {})
    assert runner.running(queued)
    hold.set()
    runner.wait(local, 10)
    runner.wait(queued, 10)


def test_registering_an_endpoint_is_admin_only_and_the_key_is_never_stored(sft_store, monkeypatch, tmp_path):
    monkeypatch.setenv("VLLM_API_KEY", "sk-never-in-the-db")
    annotator = Ctx(sft_store, Access((User("ann", "pw", Role.ANNOTATOR), User("boss", "pw", Role.ADMIN))))
    with pytest.raises(PermissionDeniedError):
        register_variant(annotator, "ann", VariantSpec("x", serving=Serving(URL, SERVED, "VLLM_API_KEY")))
    assert sft_store.get_model("x") is None
    with pytest.raises(EndpointError, match="refused"):
        register_variant(annotator, "boss", VariantSpec("y", serving=Serving(URL, SERVED, "HF_TOKEN")))
    assert sft_store.get_model("y") is None
    row = register_variant(annotator, "boss", VariantSpec("x", serving=Serving(URL, SERVED, "VLLM_API_KEY")))
    assert row.api_key_env == "VLLM_API_KEY"
    dumped = repr(sft_store.cursor().execute("SELECT * FROM models").fetchall())
    assert "sk-never-in-the-db" not in dumped


def test_a_variant_with_only_an_endpoint_cannot_be_loaded_locally_and_says_why(served_store):
    from common.context import variant_resolver
    from common.errors import UserInputError

    with pytest.raises(UserInputError, match="served at http://gpu-box:8000/v1 and has no local weights"):
        variant_resolver(served_store)("served")
