"""The fast generation path: same outputs as plain HF generate and the per-batch generator, whatever the batching."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from models.fast_generate import Request, generate_chats, generate_requests
from models.generation import generate_batch
from models.local import LocalModel, SamplingParams
from models.sampling import nucleus_ids, top_p_mask
from tests.models.chats import CHATS

PROMPTS = [
    *CHATS,
    [{"role": "user", "content": "Name a river."}],
    [{"role": "user", "content": "Tell me a story about a dog and a cat."}],
    [{"role": "user", "content": "one two three"}],
]
GREEDY = SamplingParams(temperature=0, max_new_tokens=14)
HOT = SamplingParams(temperature=1.2, top_p=0.95, max_new_tokens=14)
WARM = SamplingParams(temperature=0.7, top_p=0.8, max_new_tokens=14)


def triples(gens):
    return [(g.text, g.n_tokens, g.finish_reason) for g in gens]


def hf_batched_greedy(model, tokenizer, prompts, max_new_tokens):
    """Arm (b): one plain left-padded `generate` call over all prompts; token ids up to and including EOS."""
    texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(
        **enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
    )
    rows = []
    for ids in out[:, enc["input_ids"].shape[1] :].tolist():
        if tokenizer.eos_token_id in ids:
            ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
        rows.append(ids)
    return rows


@pytest.mark.parametrize("batch_size", [1, 2, 4, 6])
def test_fast_greedy_equals_plain_batched_hf_generate(local_model, tiny_model, tokenizer, batch_size):
    expected = hf_batched_greedy(tiny_model, tokenizer, PROMPTS, GREEDY.max_new_tokens)
    out = local_model.generate(PROMPTS, GREEDY, seeds=[0] * len(PROMPTS), batch_size=batch_size)
    assert [g.text for g in out] == [
        tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in expected
    ]
    assert [g.n_tokens for g in out] == [len(ids) for ids in expected]


@pytest.mark.parametrize("params", [HOT, WARM, SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=14)])
def test_fast_samples_exactly_what_the_per_batch_generator_samples(local_model, params):
    # generate_batch is HF generate plus the GumbelSampler logits processor: the same seeds must give the same
    # completions, so the speed-ups change nothing that is sampled.
    rows = [local_model._prompt_ids(p) for p in PROMPTS]
    seeds = [101, 202, 303, 404, 505, 606]
    tok = local_model.tokenizer
    reference = generate_batch(
        local_model.model, tok, rows, seeds, params, local_model.eos_token_ids, tok.pad_token_id
    )
    out = local_model.generate(PROMPTS, params, seeds=seeds, batch_size=4)
    assert triples(out) == triples(reference)
    assert len({g.text for g in out}) == len(PROMPTS)


@pytest.mark.parametrize("batch_size", [2, 3, 8])
def test_a_row_alone_equals_the_same_row_inside_any_batch(local_model, batch_size):
    seeds = [7, 8, 9, 10, 11, 12]
    alone = [
        local_model.generate([p], HOT, seeds=[s], batch_size=1)[0]
        for p, s in zip(PROMPTS, seeds, strict=True)
    ]
    batched = local_model.generate(PROMPTS, HOT, seeds=seeds, batch_size=batch_size)
    assert triples(batched) == triples(alone)
    # Other neighbours, other order, other padding: still the same rows.
    shuffled = [3, 0, 5, 1, 4, 2]
    moved = local_model.generate(
        [PROMPTS[i] for i in shuffled], HOT, seeds=[seeds[i] for i in shuffled], batch_size=batch_size
    )
    assert triples(moved) == [triples(alone)[i] for i in shuffled]


def test_same_seeds_reproduce_and_other_seeds_differ(local_model):
    first = local_model.generate(PROMPTS, HOT, seeds=[1, 2, 3, 4, 5, 6], batch_size=4)
    again = local_model.generate(PROMPTS, HOT, seeds=[1, 2, 3, 4, 5, 6], batch_size=4)
    other = local_model.generate(PROMPTS, HOT, seeds=[11, 12, 13, 14, 15, 16], batch_size=4)
    assert triples(first) == triples(again)
    assert sum(a.text != b.text for a, b in zip(first, other, strict=True)) >= 5


class PrefillCounter:
    """Wraps a model's forward and records the (rows, columns) of every multi-token (prefill) call."""

    def __init__(self, model):
        self.calls: list[tuple[int, int]] = []
        self.inner = model.forward
        model.forward = self

    def __call__(self, *args, **kwargs):
        ids = kwargs["input_ids"]
        if ids.shape[1] > 1:
            self.calls.append(tuple(ids.shape))
        return self.inner(*args, **kwargs)


def test_shared_prefill_continuations_equal_separate_generations(local_model, tiny_model):
    # K responses of one prompt under several settings, in one call: one prompt forward, copied K times.
    prompt = PROMPTS[2]
    cells = [(HOT, 41), (WARM, 42), (HOT, 43), (GREEDY, 44), (WARM, 45)]
    separate = [local_model.generate([prompt], p, seeds=[s], batch_size=1)[0] for p, s in cells]
    counter = PrefillCounter(tiny_model)
    shared = generate_chats(
        local_model, [prompt] * len(cells), [p for p, _ in cells], [s for _, s in cells], batch_size=8
    )
    assert counter.calls == [(1, len(local_model._prompt_ids(prompt)))]
    assert triples(shared) == triples(separate)
    assert [g.seed for g in shared] == [s for _, s in cells]
    assert len({g.text for g in shared}) >= 4


def test_mixed_prompts_and_settings_with_refill_equal_separate_generations(local_model, tiny_model):
    chats, params, seeds = [], [], []
    for i, prompt in enumerate(PROMPTS):
        for k, p in enumerate((HOT, WARM)):
            chats.append(prompt)
            params.append(p)
            seeds.append(1000 + 2 * i + k)
    separate = [
        local_model.generate([c], p, seeds=[s], batch_size=1)[0]
        for c, p, s in zip(chats, params, seeds, strict=True)
    ]
    counter = PrefillCounter(tiny_model)
    together = generate_chats(local_model, chats, params, seeds, batch_size=4)
    assert triples(together) == triples(separate)
    # Each prompt is prefilled once however its responses are spread over admissions.
    assert sum(rows for rows, _ in counter.calls) == len(PROMPTS)


@pytest.fixture
def early_stopping(tiny_model, tokenizer):
    """The tiny model with its four most frequently sampled tokens made EOS too, so rows end at different steps."""
    model = LocalModel.from_pretrained_objects(tiny_model, tokenizer, name="tiny")
    long = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=24)
    counts = Counter()
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template(
            prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        torch.manual_seed(0)
        out = tiny_model.generate(
            **ids, do_sample=True, max_new_tokens=24, pad_token_id=tokenizer.pad_token_id
        )
        counts.update(out[0, ids["input_ids"].shape[1] :].tolist())
    frequent = [token for token, _ in counts.most_common(4)]
    tiny_model.generation_config.eos_token_id = [tokenizer.eos_token_id, *frequent]
    return model, long


@pytest.mark.parametrize("refill", [True, False])
def test_rows_finishing_at_different_steps_count_tokens_and_reasons(early_stopping, refill):
    model, params = early_stopping
    seeds = list(range(50, 62))
    chats = PROMPTS * 2
    alone = [
        model.generate([c], params, seeds=[s], batch_size=1)[0] for c, s in zip(chats, seeds, strict=True)
    ]
    # The premise: rows really end at different steps, some on EOS and some on the length limit.
    assert len({g.n_tokens for g in alone}) >= 4
    assert {g.finish_reason for g in alone} == {"stop", "length"}
    tok = model.tokenizer
    requests = [Request(tuple(model._prompt_ids(c)), params, s) for c, s in zip(chats, seeds, strict=True)]
    out = generate_requests(
        model.model, tok, requests, model.eos_token_ids, tok.pad_token_id, batch_size=5, refill=refill
    )
    assert triples(out) == triples(alone)
    for g in out:
        assert 1 <= g.n_tokens <= params.max_new_tokens
        if g.finish_reason == "length":
            assert g.n_tokens == params.max_new_tokens
    # The per-batch generator pads finished rows; its counts must agree too (EOS counted, padding not).
    reference = generate_batch(
        model.model,
        tok,
        [list(r.ids) for r in requests],
        seeds,
        params,
        model.eos_token_ids,
        tok.pad_token_id,
    )
    assert triples(out) == triples(reference)


def test_progress_is_reported_in_batch_size_steps(local_model):
    calls = []
    local_model.generate(
        PROMPTS, HOT, seeds=list(range(6)), batch_size=4, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(4, 6), (6, 6)]


def sort_nucleus(logits, top_p):
    """The nucleus by a full sort: tokens kept while the mass ranked above them is below top_p."""
    sorted_logits, order = torch.sort(logits, descending=True)
    probs = sorted_logits.softmax(-1)
    keep = (probs.cumsum(-1) - probs) < top_p
    keep[0] = True
    return set(order[keep].tolist())


@pytest.mark.parametrize("scale", [0.05, 1.0, 4.0, 20.0])
@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.95, 0.999])
def test_nucleus_equals_the_full_sort_definition(scale, top_p):
    # Flat (scale 0.05) to peaked (20) rows over a 50k vocabulary: nuclei from one token to tens of thousands,
    # so every widening of the partial sort is exercised.
    generator = torch.Generator().manual_seed(int(scale * 100 + top_p * 1000))
    logits = torch.randn(3, 50_000, dtype=torch.float64, generator=generator) * scale
    for row, ids in zip(logits, nucleus_ids(logits, top_p), strict=True):
        assert set(ids.tolist()) == sort_nucleus(row, top_p)
    masked = top_p_mask(logits, top_p)
    for row, kept in zip(logits, masked, strict=True):
        assert set(torch.isfinite(kept).nonzero().flatten().tolist()) == sort_nucleus(row, top_p)


def test_batches_are_freed_without_waiting_for_the_garbage_collector(local_model):
    # Every admission merges into a new batch; a reference cycle would keep each old batch's KV buffers (hundreds
    # of MB on the real model) alive until a collection, and a long job would run out of memory first.
    import gc

    from models import fast_generate

    chats = [p for p in PROMPTS for _ in range(2)]
    gc.collect()
    gc.disable()
    try:
        generate_chats(local_model, chats, [HOT, WARM] * len(PROMPTS), list(range(12)), batch_size=4)
        # type() is not isinstance(): the latter touches deprecated module attributes and warns.
        alive = [o for o in gc.get_objects() if type(o) is fast_generate._Batch]
    finally:
        gc.enable()
    assert alive == []
