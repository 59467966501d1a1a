"""End to end against a real `transformers serve` on the default model (CPU): generation, resume, arena.

Not `slow`: CI runs it with the fast tests (about a minute). `transformers serve` ignores `n`, `logprobs` and
`response_format` and applies `seed` as a global torch seed, so nothing here depends on those or on the texts.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from annotate.generation import GenerateConfig
from annotate.models_service import VariantSpec, register_variant
from annotate.service import AnnotateService
from common.serving import Serving
from evaluate.arena import ArenaService, Matchup
from evaluate.responses import ResponseParams
from models.variants import DEFAULT_BASE

PROMPTS = ["Say hello in three words.", "Name one colour.", "What is 2 + 2?"]


@pytest.fixture
def ctx(tmp_path, real_server):
    from common.context import AppConfig, build_context
    from models.judge import make_judge

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    # The in-process `base` loads the same converted folder the server serves: no second conversion.
    os.symlink(real_server.model_dir, home / "models" / DEFAULT_BASE)
    context = build_context(AppConfig(home=home, device="cpu"), judge=make_judge("rule"))
    for i, text in enumerate(PROMPTS):
        context.store.add_prompt([{"role": "user", "content": text}], "test", "train")
        context.store.add_prompt([{"role": "user", "content": f"{text} ({i})"}], "test", "heldout")
    serving = Serving(real_server.url, real_server.served_model, revision="main")
    register_variant(context, None, VariantSpec("served", serving=serving))
    yield context
    context.store.close()


def _wait(ctx, job_id: int, timeout: float = 240) -> object:
    ctx.jobs.wait(job_id, timeout)
    job = ctx.store.get_job(job_id)
    assert not ctx.jobs.running(job_id), f"job #{job_id} still running after {timeout} s"
    return job


def _stored(ctx, name: str = "served") -> dict:
    model_id = ctx.store.get_model(name).id
    rows = (
        ctx.store.cursor()
        .execute("SELECT id, prompt_id, cell, text, params FROM generations WHERE model_id = ?", [model_id])
        .fetchall()
    )
    return {(p, c): (gid, text, json.loads(params)) for gid, p, c, text, params in rows}


def test_a_generation_job_through_the_real_server_stores_resumes_and_feeds_the_arena(ctx, real_server):
    service = AnnotateService(ctx)
    cfg = GenerateConfig(variant="served", max_new_tokens=8, concurrency=1)

    # Cancel once the first response is stored: what landed stays, nothing more is sent.
    job_id = service.start_generation(cfg)
    deadline = time.monotonic() + 180
    while not _stored(ctx) and time.monotonic() < deadline and ctx.jobs.running(job_id):
        time.sleep(0.2)
    ctx.jobs.cancel(job_id)
    job = _wait(ctx, job_id)
    assert job.status == "cancelled", job.error
    first = _stored(ctx)
    assert 1 <= len(first) < 6

    # The same job again: only the missing cells are generated, the stored ones are kept as they were.
    job_id = service.start_generation(GenerateConfig(variant="served", max_new_tokens=8, concurrency=3))
    job = _wait(ctx, job_id)
    assert job.status == "done", job.error
    assert job.result["reused"] == len(first) and job.result["generated"] == 6 - len(first)
    after = _stored(ctx)
    assert len(after) == 6
    assert all(after[key][:2] == value[:2] for key, value in first.items())
    for _gid, text, params in after.values():
        assert isinstance(text, str)
        assert params["via"] == "endpoint" and params["revision"] == "main"
        assert params["served_model"].startswith(real_server.served_model)  # it adds "@main"
        assert params["finish_reason"] in ("stop", "length")
        assert 1 <= params["completion_tokens"] <= 8 and params["prompt_tokens"] > 0
        assert params["latency_s"] > 0 and params["max_new_tokens"] == 8
    assert ctx.store.get_model("served").fingerprint == f"served:{real_server.served_model}@main"

    # An arena of the served variant against the in-process base: responses ready, a battle to vote on.
    arena = ArenaService(ctx, params=ResponseParams(max_new_tokens=6, concurrency=2))
    matchup = Matchup("served", "base")
    job = _wait(ctx, arena.prepare(None, matchup, limit=2))
    assert job.status == "done", job.error
    battle = arena.next_battle(None, matchup, typed="tester")
    assert battle is not None
    assert {battle.left_variant, battle.right_variant} == {"served", "base"}
    served_gen = battle.left_gen if battle.left_variant == "served" else battle.right_gen
    arena_rows = {gid: params for gid, _text, params in _stored(ctx).values()}
    assert arena_rows[served_gen]["purpose"] == "eval" and arena_rows[served_gen]["via"] == "endpoint"
