"""LocalModel.generate: batching, left padding, per-row seeds, greedy parity with HF, sampling correctness."""

from __future__ import annotations

import pytest
import torch

from common.errors import ModelError
from models.local import Generation, LocalModel, SamplingParams
from tests.models.chats import CHATS

PROMPTS = [
    *CHATS,
    [
        {"role": "user", "content": "Name a river."},
        {"role": "assistant", "content": "The river Rome."},
        {"role": "user", "content": "Is that good?"},
    ],
]
SAMPLE = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=12)
GREEDY = SamplingParams(temperature=0, max_new_tokens=12)


def hf_greedy(model, tokenizer, prompt, max_new_tokens):
    """Plain, unbatched HF greedy decoding: the token ids after the prompt, up to and including EOS."""
    ids = tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(
        **ids, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.eos_token_id
    )
    tokens = out[0, ids["input_ids"].shape[1] :].tolist()
    if tokenizer.eos_token_id in tokens:
        tokens = tokens[: tokens.index(tokenizer.eos_token_id) + 1]
    return tokens


def test_generate_returns_one_generation_per_prompt_in_order(local_model):
    calls = []
    seeds = [11, 22, 33, 44]
    out = local_model.generate(
        PROMPTS, SAMPLE, seeds=seeds, batch_size=3, progress=lambda d, t: calls.append((d, t))
    )
    assert [type(g) for g in out] == [Generation] * 4
    assert [g.seed for g in out] == seeds
    for g in out:
        assert isinstance(g.text, str) and g.text == g.text.strip()
        assert 1 <= g.n_tokens <= SAMPLE.max_new_tokens
        assert g.finish_reason in ("stop", "length")
        assert g.seconds >= 0
        assert (g.finish_reason == "length") == (g.n_tokens == SAMPLE.max_new_tokens)
    assert calls == [(3, 4), (4, 4)]
    assert local_model.tokenizer.padding_side == "left"
    assert local_model.tokenizer.pad_token == local_model.tokenizer.eos_token


def test_same_seeds_and_batch_size_reproduce_exactly(local_model):
    first = local_model.generate(PROMPTS, SAMPLE, seeds=[1, 2, 3, 4], batch_size=2)
    again = local_model.generate(PROMPTS, SAMPLE, seeds=[1, 2, 3, 4], batch_size=2)
    assert [(g.text, g.n_tokens, g.finish_reason) for g in first] == [
        (g.text, g.n_tokens, g.finish_reason) for g in again
    ]


def test_output_depends_only_on_own_prompt_and_seed_not_on_batch(local_model):
    seeds = [5, 6, 7, 8]
    batched = local_model.generate(PROMPTS, SAMPLE, seeds=seeds, batch_size=4)
    alone = [
        local_model.generate([p], SAMPLE, seeds=[s], batch_size=1)[0]
        for p, s in zip(PROMPTS, seeds, strict=True)
    ]
    assert [(g.text, g.n_tokens) for g in batched] == [(g.text, g.n_tokens) for g in alone]
    # Reordering the batch (other neighbours, other padding) must not change any row either.
    reversed_out = local_model.generate(PROMPTS[::-1], SAMPLE, seeds=seeds[::-1], batch_size=4)[::-1]
    assert [g.text for g in reversed_out] == [g.text for g in batched]


def test_different_seeds_give_different_samples(local_model):
    prompt = PROMPTS[0]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=8)
    out = local_model.generate([prompt] * 6, params, seeds=list(range(6)), batch_size=6)
    assert len({g.text for g in out}) >= 5
    greedy = local_model.generate([prompt], GREEDY, seeds=[0])[0]
    assert any(g.text != greedy.text for g in out)


def test_greedy_matches_plain_hf_generate_with_left_padding(local_model, tiny_model, tokenizer):
    out = local_model.generate(PROMPTS, GREEDY, seeds=[0, 0, 0, 0], batch_size=4)
    for prompt, g in zip(PROMPTS, out, strict=True):
        expected = hf_greedy(tiny_model, tokenizer, prompt, GREEDY.max_new_tokens)
        assert g.text == tokenizer.decode(expected, skip_special_tokens=True).strip()
        assert g.n_tokens == len(expected)


def test_greedy_ignores_seed(local_model):
    a = local_model.generate(PROMPTS, GREEDY, seeds=[1, 2, 3, 4])
    b = local_model.generate(PROMPTS, GREEDY, seeds=[9, 8, 7, 6])
    assert [g.text for g in a] == [g.text for g in b]


def test_eos_stops_a_row_and_is_counted_but_padding_is_not(tiny_model, tokenizer):
    # Point the EOS row of the LM head at prompt 0's final hidden state (and away from prompt 1's), so greedy
    # decoding ends prompt 0 at once while prompt 1 keeps going in the same batch.
    hidden = []
    for prompt in PROMPTS[:2]:
        ids = tokenizer.apply_chat_template(
            prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.no_grad():
            hidden.append(tiny_model.model(**ids).last_hidden_state[0, -1])
    # RMSNorm gives both states the same norm, so w = c*(h0 - h1) scores h0 at +c|d|^2/2 and h1 at -c|d|^2/2.
    direction = hidden[0] - hidden[1]
    with torch.no_grad():
        tiny_model.lm_head.weight[tokenizer.eos_token_id] = 120 * direction / direction.dot(direction)
    model = LocalModel.from_pretrained_objects(tiny_model, tokenizer, name="eos")
    stopped, running = model.generate(PROMPTS[:2], GREEDY, seeds=[0, 0], batch_size=2)
    assert (stopped.text, stopped.n_tokens, stopped.finish_reason) == ("", 1, "stop")
    expected = hf_greedy(tiny_model, tokenizer, PROMPTS[1], GREEDY.max_new_tokens)
    assert running.n_tokens == len(expected) > 1
    assert running.finish_reason == ("stop" if expected[-1] == tokenizer.eos_token_id else "length")


def first_token_text_probs(model, tokenizer, prompt, temperature, top_p=1.0):
    """Probability of each first-token text (tokens decoding to the same stripped text pooled), after top-p."""
    ids = tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        probs = (model(**ids).logits[0, -1].float() / temperature).softmax(-1)
    sorted_probs, order = probs.sort(descending=True)
    kept = int((sorted_probs.cumsum(0) - sorted_probs < top_p).sum())
    pooled: dict[str, float] = {}
    for p, token in zip(sorted_probs[:kept].tolist(), order[:kept].tolist(), strict=True):
        text = tokenizer.decode([token], skip_special_tokens=True).strip()
        pooled[text] = pooled.get(text, 0.0) + p
    total = sum(pooled.values())
    return {text: p / total for text, p in pooled.items()}


def test_sampling_draws_from_the_tempered_distribution(local_model, tiny_model, tokenizer):
    prompt, n = PROMPTS[1], 3000
    params = SamplingParams(temperature=0.8, top_p=1.0, max_new_tokens=1)
    out = local_model.generate([prompt] * n, params, seeds=list(range(n)), batch_size=1000)
    probs = first_token_text_probs(tiny_model, tokenizer, prompt, 0.8)
    texts = [g.text for g in out]
    for text, p in sorted(probs.items(), key=lambda kv: -kv[1])[:3]:
        freq = texts.count(text) / n
        # Seeds are fixed, so this is deterministic; 5 standard errors would only fail for a wrong sampler.
        assert abs(freq - p) < 5 * (p * (1 - p) / n) ** 0.5 + 1e-3, (text, freq, p)


def test_top_p_never_samples_outside_the_nucleus(local_model, tiny_model, tokenizer):
    prompt, n = PROMPTS[0], 400
    params = SamplingParams(temperature=1.0, top_p=0.5, max_new_tokens=1)
    out = local_model.generate([prompt] * n, params, seeds=list(range(n)), batch_size=400)
    nucleus = first_token_text_probs(tiny_model, tokenizer, prompt, 1.0, top_p=0.5)
    everything = first_token_text_probs(tiny_model, tokenizer, prompt, 1.0)
    assert len(everything) > len(nucleus) > 1  # the test needs a nucleus that really excludes tokens
    seen = {g.text for g in out}
    assert seen <= set(nucleus)
    assert max(nucleus, key=nucleus.get) in seen


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"temperature": -0.1}, "-0.1"),
        ({"temperature": float("nan")}, "nan"),
        ({"temperature": "hot"}, "'hot'"),
        ({"top_p": 0.0}, "0.0"),
        ({"top_p": 1.5}, "1.5"),
        ({"max_new_tokens": 0}, "0"),
        ({"max_new_tokens": 2.5}, "2.5"),
        ({"max_new_tokens": True}, "True"),
    ],
)
def test_sampling_params_reject_bad_values_naming_them(kwargs, named):
    with pytest.raises(ModelError, match=next(iter(kwargs))) as err:
        SamplingParams(**kwargs)
    assert named in str(err.value)


def test_generate_rejects_mismatched_seeds_and_bad_prompts(local_model):
    with pytest.raises(ModelError, match="one seed per prompt"):
        local_model.generate(PROMPTS, SAMPLE, seeds=[1])
    with pytest.raises(ModelError, match="batch_size"):
        local_model.generate(PROMPTS[:1], SAMPLE, seeds=[1], batch_size=0)
    with pytest.raises(ModelError, match="role"):
        local_model.generate([[{"text": "hi"}]], SAMPLE, seeds=[1])
