"""The reference log-prob cache: one scoring pass over the misses, exact values, keys that tell models apart."""

from __future__ import annotations

import pytest

from store.train_queries import RefKey
from tests.train.dpo_fixtures import make_ctx, tiny_config, tiny_sft  # noqa: F401
from train.refcache import fill_ref_logps, ref_key, template_hash
from train.snapshot import build_snapshot


def count_forwards(local) -> list[int]:
    """A forward hook on the scorer's model: [number of forwards]."""
    calls = [0]
    local.model.register_forward_hook(lambda *args: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.fixture
def ctx(tmp_path, tiny_sft):  # noqa: F811
    context = make_ctx(tmp_path / "home", tiny_sft, n_triples=12)
    yield context
    context.store.close()


def snapshot_rows(ctx, **overrides):
    snap = build_snapshot(ctx.store.preference_triples(), tiny_config(**overrides))
    return snap.train + snap.val


def test_second_fill_scores_nothing_and_returns_the_same_values(ctx):
    sft = ctx.generator.get("sft")
    forwards = count_forwards(sft)
    rows = snapshot_rows(ctx)
    first = fill_ref_logps(ctx.store, sft, rows, max_length=1024, truncation_mode="keep_start", batch_size=4)
    assert (first.hits, first.computed) == (0, 24)
    assert forwards[0] == 6  # 24 responses in batches of 4: one pass, nothing scored twice
    assert ctx.store.count_ref_logps(sft.fingerprint) == 24
    values = [(r["ref_chosen_logps"], r["ref_rejected_logps"]) for r in rows]
    direct = sft.score([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    assert [v[0] for v in values] == pytest.approx(direct, abs=1e-12)

    forwards[0] = 0
    again = snapshot_rows(ctx)
    second = fill_ref_logps(ctx.store, sft, again, max_length=1024, truncation_mode="keep_start")
    assert (second.hits, second.computed, forwards[0]) == (24, 0, 0)
    assert [(r["ref_chosen_logps"], r["ref_rejected_logps"]) for r in again] == values


def test_only_the_misses_are_scored(ctx):
    sft = ctx.generator.get("sft")
    rows = snapshot_rows(ctx)
    fill_ref_logps(ctx.store, sft, rows[:5], max_length=1024, truncation_mode="keep_start")
    forwards = count_forwards(sft)
    fill = fill_ref_logps(ctx.store, sft, rows, max_length=1024, truncation_mode="keep_start", batch_size=64)
    assert (fill.hits, fill.computed, forwards[0]) == (10, 14, 1)


def test_key_separates_models_and_truncation(ctx):
    sft, base = ctx.generator.get("sft"), ctx.generator.get("base")
    assert sft.fingerprint != base.fingerprint  # a non-zero SFT adapter: the variants really differ
    rows = snapshot_rows(ctx)
    fill_ref_logps(ctx.store, sft, rows, max_length=1024, truncation_mode="keep_start")
    sft_values = [r["ref_chosen_logps"] for r in rows]
    on_base = fill_ref_logps(ctx.store, base, rows, max_length=1024, truncation_mode="keep_start")
    assert on_base.computed == 24
    assert max(abs(a - r["ref_chosen_logps"]) for a, r in zip(sft_values, rows, strict=True)) > 0.1
    short = fill_ref_logps(ctx.store, sft, rows, max_length=16, truncation_mode="keep_start")
    assert short.computed == 24 and short.key.max_length == 16
    unlimited = fill_ref_logps(ctx.store, sft, rows, max_length=None, truncation_mode="keep_start")
    assert unlimited.key.max_length == 0 and unlimited.computed == 24


def test_key_names_the_template(ctx):
    sft = ctx.generator.get("sft")
    key = ref_key(sft, 1024, "keep_start")
    assert key == RefKey(sft.fingerprint, template_hash(sft.tokenizer), 1024, "keep_start")
    sft.tokenizer.chat_template = sft.tokenizer.chat_template + " "
    assert template_hash(sft.tokenizer) != key.template_hash


def test_cancel_between_chunks_keeps_what_was_scored(ctx, monkeypatch):
    import train.refcache as refcache

    monkeypatch.setattr(refcache, "CHUNK", 8)
    sft = ctx.generator.get("sft")
    rows = snapshot_rows(ctx)
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(InterruptedError):
        fill_ref_logps(
            ctx.store, sft, rows, max_length=1024, truncation_mode="keep_start", should_stop=should_stop
        )
    assert ctx.store.count_ref_logps(sft.fingerprint) == 8
