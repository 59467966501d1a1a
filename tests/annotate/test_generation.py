"""Pair generation: cells, seeds, pairing, near-duplicates and resuming a killed job."""

from __future__ import annotations

import pytest

from annotate.generation import GenerateConfig, near_identical, plan_cells, run_generation
from common.errors import UserInputError


def _cfg(**kw):
    return GenerateConfig(**{"max_new_tokens": 6, "batch_size": 4, "near_identical": 1.01, **kw})


def test_generates_k_per_prompt_and_pairs_them(sft_store, tiny_pool):
    result = run_generation(sft_store, tiny_pool, _cfg(per_prompt=4))
    counts = sft_store.counts()
    assert counts["generations"] == 6 * 4  # train split only
    assert result.generated == 24 and result.pairs == 12 and counts["pairs"] == 12
    assert result.tokens > 0 and result.seconds > 0
    pair = sft_store.get_pair_view(1)
    assert pair.text_a is not None and pair.gen_a != pair.gen_b
    # The fingerprint of the loaded model is recorded on the variant.
    assert sft_store.get_model("sft").fingerprint == tiny_pool.loader.model.fingerprint


def test_cells_cycle_temperatures_and_record_params(sft_store, tiny_pool):
    cells = plan_cells(_cfg(per_prompt=4))
    assert [c.temperature for c in cells] == [0.7, 1.2, 0.7, 1.2]
    run_generation(sft_store, tiny_pool, _cfg(limit=1))
    rows = sft_store.cursor().execute("SELECT params, seed, cell FROM generations ORDER BY id").fetchall()
    import json

    temps = sorted(json.loads(p)["temperature"] for p, _, _ in rows)
    assert temps == [0.7, 1.2]
    assert all(seed is not None for _, seed, _ in rows)


def test_resumed_job_generates_nothing_twice(sft_store, tiny_pool):
    calls = {"n": 0}

    def stop_after_first_group():
        calls["n"] += 1
        return calls["n"] > 1  # the first group runs, then the "kill"

    first = run_generation(sft_store, tiny_pool, _cfg(), should_stop=stop_after_first_group)
    assert first.generated == 8  # one group of 4 prompts x 2 cells
    texts_before = dict(sft_store.cursor().execute("SELECT id, text FROM generations").fetchall())
    second = run_generation(sft_store, tiny_pool, _cfg())
    assert second.reused == 8 and second.generated == 4
    rows = (
        sft_store.cursor()
        .execute("SELECT prompt_id, cell, count(*) FROM generations GROUP BY ALL")
        .fetchall()
    )
    assert all(n == 1 for _, _, n in rows) and len(rows) == 12
    after = dict(sft_store.cursor().execute("SELECT id, text FROM generations").fetchall())
    assert {k: after[k] for k in texts_before} == texts_before
    assert sft_store.counts()["pairs"] == 6


def test_same_seed_reproduces_and_other_seed_differs(sft_store, tiny_pool, tmp_path):
    from store import Store

    run_generation(sft_store, tiny_pool, _cfg(limit=2, max_new_tokens=12))
    first = [t for (t,) in sft_store.cursor().execute("SELECT text FROM generations ORDER BY id").fetchall()]
    # A second database, same config: the recorded per-cell seeds give the same texts.
    other = Store.open(tmp_path / "other.duckdb")
    for p in sft_store.list_prompts():
        other.add_prompt(p.messages, "test", p.split, gold=p.gold)
    other.add_model("sft", "tiny-base", [], "sft")
    from common.context import variant_resolver
    from models.pool import ModelPool

    pool = ModelPool(variant_resolver(other), tmp_path / "m", loader=tiny_pool.loader)
    run_generation(other, pool, _cfg(limit=2, max_new_tokens=12))
    again = [t for (t,) in other.cursor().execute("SELECT text FROM generations ORDER BY id").fetchall()]
    assert again == first
    run_generation(other, pool, _cfg(limit=2, max_new_tokens=12, seed=7))
    reseeded = [
        t
        for (t,) in other.cursor().execute("SELECT text FROM generations WHERE id > 4 ORDER BY id").fetchall()
    ]
    assert reseeded != first


def test_batch_size_does_not_change_any_cell(sft_store, tiny_pool, tmp_path):
    # One generate call per group covers every missing cell of its prompts (K responses share a prefill);
    # each cell's text depends only on its prompt, settings and seed, so any grouping stores the same texts.
    from common.context import variant_resolver
    from models.pool import ModelPool
    from store import Store

    def cells_of(store):
        sql = "SELECT p.content_hash, g.cell, g.text FROM generations g JOIN prompts p ON p.id = g.prompt_id"
        return {(h, c): t for h, c, t in store.cursor().execute(sql).fetchall()}

    run_generation(sft_store, tiny_pool, _cfg(per_prompt=4, max_new_tokens=10, batch_size=4))
    other = Store.open(tmp_path / "other.duckdb")
    for p in sft_store.list_prompts():
        other.add_prompt(p.messages, "test", p.split, gold=p.gold)
    other.add_model("sft", "tiny-base", [], "sft")
    pool = ModelPool(variant_resolver(other), tmp_path / "m", loader=tiny_pool.loader)
    run_generation(other, pool, _cfg(per_prompt=4, max_new_tokens=10, batch_size=1))
    first, again = cells_of(sft_store), cells_of(other)
    assert len(first) == 24 and again == first
    other.close()


def test_near_identical_pairs_are_counted_not_offered(sft_store, tiny_pool):
    # Temperature 0 twice: both slots decode greedily to the same text.
    result = run_generation(sft_store, tiny_pool, _cfg(temperatures=(0.0,), near_identical=0.9))
    assert result.pairs == 0 and result.near_identical == 6
    assert sft_store.counts()["pairs"] == 0


def test_near_identical_rule():
    assert near_identical("Severity: SEV1\nSummary: x.", "severity:  sev1 summary: x.", 0.9)
    assert not near_identical("Severity: SEV1", "Completely different answer here", 0.9)


def test_missing_variant_and_bad_config_are_user_errors(store, tiny_pool):
    store.add_prompt([{"role": "user", "content": "x"}], "t", "train")
    with pytest.raises(UserInputError, match="no variant named 'sft'"):
        run_generation(store, tiny_pool, _cfg())
    with pytest.raises(UserInputError, match="per-prompt"):
        GenerateConfig(per_prompt=3)
    with pytest.raises(UserInputError, match="top-p"):
        GenerateConfig(top_p=0)


def test_fewshot_strategy_uses_two_different_prefixes(sft_store, tiny_pool):
    from annotate.generation import fewshot_prefixes

    calls = []
    model = tiny_pool.loader.model
    original = model.generate

    def spy(prompts, params, **kw):
        calls.append(prompts)
        return original(prompts, params, **kw)

    model.generate = spy
    result = run_generation(sft_store, tiny_pool, _cfg(strategy="fewshot", limit=2))
    assert result.generated == 4 and len(calls) == 1  # one call per group, both slots of both prompts
    first, second = calls[0][:2]  # the first prompt under slot 0's and slot 1's prefix
    # Each slot's chat = its own one-shot example (user + assistant turns) + the real prompt.
    assert first[-1] == second[-1] and first[:-1] != second[:-1]
    assert [m["role"] for m in first] == ["user", "assistant", "user"]
    with pytest.raises(UserInputError):
        fewshot_prefixes([([{"role": "user", "content": "x"}], "y")])


def test_prompt_plus_budget_must_fit_the_model_context(tiny_local_model):
    """The tiny model's context is 512 positions: a 600-token budget cannot fit, whatever the prompt."""
    from models.sampling import SamplingParams

    chat = [{"role": "user", "content": "what color is the cat?"}]
    with pytest.raises(UserInputError) as exc:
        tiny_local_model.generate([chat], SamplingParams(0.0, 1.0, 600), seeds=[0])
    text = str(exc.value)
    assert "\n" not in text and "512" in text and "600" in text
    # Within the window it still generates.
    (out,) = tiny_local_model.generate([chat], SamplingParams(0.0, 1.0, 4), seeds=[0])
    assert out.n_tokens <= 4


def test_generation_job_checks_the_context_before_generating_anything(sft_store, tiny_pool):
    with pytest.raises(UserInputError) as exc:
        run_generation(sft_store, tiny_pool, _cfg(max_new_tokens=600, batch_size=2))
    assert "context" in str(exc.value) and "\n" not in str(exc.value)
    assert sft_store.counts()["generations"] == 0


def test_the_cli_runs_the_button_s_job_in_the_foreground(sft_store, tiny_pool):
    from types import SimpleNamespace

    from annotate.generation import GenerateResult
    from annotate.service import generate_here

    seen = []
    ctx = SimpleNamespace(store=sft_store, generator=tiny_pool)
    job_id, result = generate_here(
        ctx, _cfg(limit=2), progress=lambda done, total: seen.append((done, total))
    )
    job = sft_store.get_job(job_id)
    assert job.kind == "generate" and job.status == "done" and job.params == _cfg(limit=2).to_dict()
    assert job.result == result and (job.progress, job.total) == seen[-1] == (4, 4)
    assert GenerateResult.from_dict(result).summary().startswith("generated 4 responses (0 already stored)")


def test_flags_and_the_form_build_the_same_settings():
    # None is "not given" (a blank form field, an absent flag): the default stays.
    assert GenerateConfig.from_values(variant="sft", limit=None, max_new_tokens=None) == GenerateConfig()
    assert GenerateConfig.from_values("demo", per_prompt=None) == GenerateConfig.demo()
    assert GenerateConfig.from_values("demo", per_prompt=2).per_prompt == 2
