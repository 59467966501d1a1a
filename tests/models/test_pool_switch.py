"""One shared base with PEFT adapters switched per call gives what today's merged copies give, in less memory."""

from __future__ import annotations

import json
import shutil

import pytest

from models.local import SamplingParams, Variant
from models.pool import ModelPool
from models.variants import switchable_adapter

PROMPTS = [
    [{"role": "user", "content": "what is the capital of france?"}],
    [{"role": "system", "content": "you help"}, {"role": "user", "content": "name a red animal please"}],
    [{"role": "user", "content": "hello"}],
]
RESPONSES = ["the capital city is paris.", "a red bird and a dog", "hello world"]


@pytest.fixture
def variants(base_dir, adapter_dirs):
    sft, dpo = (str(p) for p in adapter_dirs)
    table = {
        "base": Variant("base", str(base_dir)),
        "sft": Variant("sft", str(base_dir), (sft,)),
        "sft+dpo": Variant("sft+dpo", str(base_dir), (sft, dpo)),  # stacked, as a DPO run registers it
        "dpo-only": Variant("dpo-only", str(base_dir), (dpo,)),
    }
    return table.__getitem__


def pools(variants, tmp_path, dtype="float64"):
    switched = ModelPool(variants, tmp_path / "c", dtype=dtype, adapters="switch")
    merged = ModelPool(variants, tmp_path / "c", dtype=dtype, adapters="merge")
    return switched, merged


def test_switched_adapters_score_and_generate_like_merged_copies(variants, tmp_path):
    switched, merged = pools(variants, tmp_path)
    params = [
        SamplingParams(temperature=0.9, top_p=0.9, max_new_tokens=10),
        SamplingParams(temperature=0.0, max_new_tokens=10),
        SamplingParams(temperature=1.3, top_p=1.0, max_new_tokens=10),
    ]
    scores = {}
    # Interleaved on purpose: every call must switch the adapters it needs, whatever ran before it.
    for name in ["sft", "base", "sft+dpo", "dpo-only", "sft", "base"]:
        mine, theirs = switched.get(name), merged.get(name)
        got, want = mine.score(PROMPTS, RESPONSES), theirs.score(PROMPTS, RESPONSES)
        assert got == pytest.approx(want, abs=1e-6), name
        ours = mine.generate(PROMPTS, params, seeds=[11, 12, 13])
        reference = theirs.generate(PROMPTS, params, seeds=[11, 12, 13])
        assert [g.text for g in ours] == [g.text for g in reference], name
        assert [g.n_tokens for g in ours] == [g.n_tokens for g in reference], name
        scores[name] = got
    # The fixtures really differ, so a wrong adapter (or none) could not pass the comparisons above.
    assert len({tuple(round(s, 6) for s in v) for v in scores.values()}) == 4


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_fingerprints_equal_the_merged_copies(variants, tmp_path, dtype):
    """The reference log-prob cache keys on the fingerprint: switching must not invalidate users' caches."""
    switched, merged = pools(variants, tmp_path, dtype)
    prints = {}
    for name in ["sft+dpo", "base", "sft", "dpo-only"]:
        prints[name] = switched.get(name).fingerprint
        assert prints[name] == merged.get(name).fingerprint, name
    assert len(set(prints.values())) == 4


def test_variants_share_one_base(variants, tmp_path):
    switched, merged = pools(variants, tmp_path)
    for name in ["base", "sft", "sft+dpo", "dpo-only"]:
        switched.get(name)
        merged.get(name)
    assert sorted(switched.loaded()) == sorted(merged.loaded()) == ["base", "dpo-only", "sft", "sft+dpo"]
    one_copy = merged.loaded_bytes() / 4
    # One base plus two small adapters (the stacked variant reuses the SFT adapter it shares with `sft`).
    assert switched.loaded_bytes() < 1.5 * one_copy
    assert switched.get("sft").model is switched.get("base").model


def test_plain_copy_of_a_switched_variant_is_the_merged_model(variants, tmp_path):
    import torch

    switched, merged = pools(variants, tmp_path)
    switched.get("base")
    copy = switched.get("sft+dpo").plain_copy()
    want = merged.get("sft+dpo").model.state_dict()
    got = copy.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    plain_base = switched.get("base").plain_copy().state_dict()
    assert not any("lora" in k for k in plain_base)
    # The shared base keeps serving every variant after a copy was taken.
    assert switched.get("sft").score(PROMPTS, RESPONSES) == pytest.approx(
        merged.get("sft").score(PROMPTS, RESPONSES), abs=1e-6
    )


def test_byte_limit_evicts_least_recently_used(variants, tmp_path):
    merged = ModelPool(variants, tmp_path / "c", dtype="float64", adapters="merge")
    merged.get("base")
    one = merged.loaded_bytes()
    limited = ModelPool(variants, tmp_path / "c", dtype="float64", adapters="merge", max_bytes=int(2.5 * one))
    limited.get("base")
    limited.get("sft")
    limited.get("base")  # now `sft` is the least recently used
    limited.get("sft+dpo")
    assert limited.loaded() == ["base", "sft+dpo"]
    assert limited.loaded_bytes() <= 2.5 * one


def test_free_empties_the_pool_and_reloads_on_demand(variants, tmp_path):
    switched, _ = pools(variants, tmp_path)
    held = switched.get("sft")
    before = held.score(PROMPTS, RESPONSES)
    switched.get("base")
    assert switched.free() == 1
    assert switched.loaded() == [] and switched.loaded_bytes() == 0
    assert switched.release_device("cpu") == 0
    assert switched.get("sft").score(PROMPTS, RESPONSES) == before
    # A job that still holds its model when the pool lets go finishes with the right adapters.
    assert held.score(PROMPTS, RESPONSES) == before


def test_where_each_model_runs(variants, tmp_path):
    switched, _ = pools(variants, tmp_path)
    assert switched.where("sft") is None
    assert switched.plan() == "cpu, fp64"
    switched.get("sft")
    assert switched.where("sft") == "sft on cpu, fp64"


def test_only_plain_lora_adapters_are_switched(adapter_dirs, tmp_path):
    sft = adapter_dirs[0]
    assert switchable_adapter(str(sft))
    for extra in ({"use_dora": True}, {"modules_to_save": ["lm_head"]}, {"target_modules": ["embed_tokens"]}):
        folder = tmp_path / next(iter(extra))
        shutil.copytree(sft, folder)
        config = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**config, **extra}))
        assert not switchable_adapter(str(folder)), extra
    assert not switchable_adapter(str(tmp_path / "missing"))


def test_an_unswitchable_variant_loads_as_its_own_merged_copy(variants, adapter_dirs, tmp_path, monkeypatch):
    import models.pool

    monkeypatch.setattr(models.pool, "switchable_adapter", lambda path: path != str(adapter_dirs[1]))
    switched, merged = pools(variants, tmp_path)
    shared, alone = switched.get("sft"), switched.get("dpo-only")
    assert alone.model is not shared.model
    assert alone.score(PROMPTS, RESPONSES) == pytest.approx(
        merged.get("dpo-only").score(PROMPTS, RESPONSES), abs=1e-6
    )
    assert sorted(switched.loaded()) == ["dpo-only", "sft"]
