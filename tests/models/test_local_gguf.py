"""The real default model: GGUF converted once to a safetensors cache, then loaded from the cache."""

from __future__ import annotations

import logging

import pytest

from models import gguf_cache
from models.local import DEFAULT_BASE, SamplingParams, Variant, load_variant

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.slow
def test_default_model_converts_once_then_loads_from_cache(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="models")
    cache_dir = tmp_path / "models"
    variant = Variant("base", DEFAULT_BASE)

    first = load_variant(variant, cache_dir=cache_dir)
    cached = cache_dir / DEFAULT_BASE
    assert (cached / "model.safetensors").is_file()
    assert (cached / "tokenizer.json").is_file()
    assert (cached / "generation_config.json").is_file()
    assert [p.name for p in cache_dir.iterdir()] == [DEFAULT_BASE]  # no half-written temp folder left behind
    assert any("converting" in r.getMessage() for r in caplog.records)
    assert "<|im_start|>" in first.tokenizer.chat_template
    fingerprint = first.fingerprint
    del first

    def must_not_convert(*args, **kwargs):
        raise AssertionError(f"second load touched the GGUF: {args}")

    monkeypatch.setattr(gguf_cache, "convert_gguf", must_not_convert)
    caplog.clear()
    second = load_variant(variant, cache_dir=cache_dir)
    assert not any("converting" in r.getMessage() for r in caplog.records)
    assert second.fingerprint == fingerprint

    [answer] = second.generate([QUESTION], SamplingParams(temperature=0, max_new_tokens=20), seeds=[0])
    assert answer.text
    assert "Paris" in answer.text
    paris, berlin = second.score(
        [QUESTION] * 2, ["The capital of France is Paris.", "The capital of France is Berlin."]
    )
    assert paris > berlin


def test_conversion_failure_leaves_no_partial_cache(tmp_path, monkeypatch):
    def crash(gguf, dest):
        (dest / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(gguf_cache, "convert_gguf", crash)
    with pytest.raises(RuntimeError, match="killed"):
        gguf_cache.ensure_default_cache(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_finished_conversion_is_renamed_into_place_and_reused(tmp_path, monkeypatch):
    calls = []

    def fake_convert(gguf, dest):
        calls.append(gguf.name)
        (dest / "config.json").write_text("{}")
        (dest / gguf_cache.SOURCE_FILE).write_text("{}")

    monkeypatch.setattr(gguf_cache, "convert_gguf", fake_convert)
    first = gguf_cache.ensure_default_cache(tmp_path)
    second = gguf_cache.ensure_default_cache(tmp_path)
    assert first == second == tmp_path / DEFAULT_BASE
    assert calls == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert sorted(p.name for p in first.iterdir()) == ["config.json", gguf_cache.SOURCE_FILE]
    assert [p.name for p in tmp_path.iterdir()] == [DEFAULT_BASE]
