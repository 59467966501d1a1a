"""The arms of bench/generation.py: each generates one response per prompt and setting and returns a timed Run.

bench/generation.py says what each arm stands for; bench/report.py lays the figures out.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from unittest import mock

SETTINGS = (0.7, 1.2)


@dataclass
class Run:
    """One timed pass of an arm over every prompt and setting."""

    seconds: float
    tokens: int
    texts: dict[tuple[int, int], str]


def seed_of(prompt: int, setting: int) -> int:
    return 1000 + 2 * prompt + setting


def matmul_gflops(n: int = 1536, repeats: int = 5) -> float:
    """The machine's fp32 matmul rate right now: median of a few timed n x n products."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times) / 1e9


def completion_tokens(ids: list[int], eos: set[int]) -> list[int]:
    stop = next((i for i, t in enumerate(ids) if t in eos), None)
    return ids if stop is None else ids[: stop + 1]


def _hf_sample(model, tok, enc, temperature: float, seed: int, args):
    """Plain `generate` with sampling, as a tutorial calls it (torch's global seed set first)."""
    import torch

    torch.manual_seed(seed)
    with torch.inference_mode():
        return model.generate(
            **enc,
            do_sample=True,
            temperature=temperature,
            top_p=args.top_p,
            max_new_tokens=args.max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )


def arm_naive(local, prompts, args) -> Run:
    """(a): the tutorial loop, one generate call per prompt and setting."""

    tok, model, eos = local.tokenizer, local.model, set(local.eos_token_ids)
    texts, tokens = {}, 0
    started = time.perf_counter()
    for i, chat in enumerate(prompts):
        enc = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        for k, temperature in enumerate(SETTINGS):
            out = _hf_sample(model, tok, enc, temperature, seed_of(i, k), args)
            ids = completion_tokens(out[0, enc["input_ids"].shape[1] :].tolist(), eos)
            tokens += len(ids)
            texts[(i, k)] = tok.decode(ids, skip_special_tokens=True).strip()
    return Run(time.perf_counter() - started, tokens, texts)


def arm_hf_batched(local, prompts, args, batch_size: int) -> Run:
    """(b): plain batched generate, left-padded chunks in file order, one call per chunk and setting."""

    tok, model, eos = local.tokenizer, local.model, set(local.eos_token_ids)
    texts, tokens = {}, 0
    started = time.perf_counter()
    rendered = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in prompts]
    for start in range(0, len(prompts), batch_size):
        chunk = list(range(start, min(start + batch_size, len(prompts))))
        # The chat template already holds the special tokens, so the tokenizer must not add any.
        enc = tok([rendered[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        for k, temperature in enumerate(SETTINGS):
            out = _hf_sample(model, tok, enc, temperature, seed_of(start, k), args)
            for row, i in enumerate(chunk):
                ids = completion_tokens(out[row, enc["input_ids"].shape[1] :].tolist(), eos)
                tokens += len(ids)
                texts[(i, k)] = tok.decode(ids, skip_special_tokens=True).strip()
    return Run(time.perf_counter() - started, tokens, texts)


def sort_top_p_mask(logits, top_p: float):
    """The top-p mask as PrefLab computed it before: a full sort of the vocabulary per row and step."""
    import torch

    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= top_p
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def arm_preflab_before(local, prompts, args) -> Run:
    """(c0): the generator as it was: generate_batch per length-sorted chunk, sort-based top-p."""
    import models.sampling
    from models.generation import generate_batch
    from models.sampling import SamplingParams

    rows = [local._prompt_ids(c) for c in prompts]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    texts, tokens = {}, 0
    started = time.perf_counter()
    with mock.patch.object(models.sampling, "top_p_mask", sort_top_p_mask):
        for k, temperature in enumerate(SETTINGS):
            params = SamplingParams(temperature, args.top_p, args.max_new_tokens)
            for start in range(0, len(order), args.batch_size):
                chunk = order[start : start + args.batch_size]
                outs = generate_batch(
                    local.model,
                    local.tokenizer,
                    [rows[i] for i in chunk],
                    [seed_of(i, k) for i in chunk],
                    params,
                    local.eos_token_ids,
                    local.tokenizer.pad_token_id,
                )
                for i, g in zip(chunk, outs, strict=True):
                    tokens += g.n_tokens
                    texts[(i, k)] = g.text
    return Run(time.perf_counter() - started, tokens, texts)


def arm_preflab(local, prompts, args) -> Run:
    """(c): LocalModel.generate, one call per setting, as annotate/generation.py does."""
    from models.sampling import SamplingParams

    texts, tokens = {}, 0
    started = time.perf_counter()
    for k, temperature in enumerate(SETTINGS):
        params = SamplingParams(temperature, args.top_p, args.max_new_tokens)
        seeds = [seed_of(i, k) for i in range(len(prompts))]
        for i, g in enumerate(local.generate(prompts, params, seeds=seeds, batch_size=args.batch_size)):
            tokens += g.n_tokens
            texts[(i, k)] = g.text
    return Run(time.perf_counter() - started, tokens, texts)


def arm_preflab_shared(local, prompts, args, refill: bool = True) -> Run:
    """(c) with every setting of a prompt in one call: one prefill shared by the prompt's responses."""
    from models import fast_generate
    from models.sampling import SamplingParams

    cells = [(i, k) for k in range(len(SETTINGS)) for i in range(len(prompts))]
    params = [SamplingParams(SETTINGS[k], args.top_p, args.max_new_tokens) for _, k in cells]
    started = time.perf_counter()
    if refill:
        outs = fast_generate.generate_chats(
            local,
            [prompts[i] for i, _ in cells],
            params,
            [seed_of(i, k) for i, k in cells],
            batch_size=args.batch_size,
        )
    else:
        requests = [
            fast_generate.Request(tuple(local._prompt_ids(prompts[i])), p, seed_of(i, k))
            for (i, k), p in zip(cells, params, strict=True)
        ]
        outs = fast_generate.generate_requests(
            local.model,
            local.tokenizer,
            requests,
            local.eos_token_ids,
            local.tokenizer.pad_token_id,
            batch_size=args.batch_size,
            refill=False,
        )
    texts = {cell: g.text for cell, g in zip(cells, outs, strict=True)}
    return Run(time.perf_counter() - started, sum(g.n_tokens for g in outs), texts)


def arm_hf_continuous(local, prompts, args) -> Run:
    """transformers' own continuous batching (`model.generate_batch`, paged cache), one call per setting."""
    import torch
    from transformers import GenerationConfig

    tok, model, eos = local.tokenizer, local.model, set(local.eos_token_ids)
    rows = [local._prompt_ids(chat) for chat in prompts]
    texts, tokens = {}, 0
    started = time.perf_counter()
    for k, temperature in enumerate(SETTINGS):
        torch.manual_seed(seed_of(0, k))
        config = GenerationConfig(
            do_sample=True,
            temperature=temperature,
            top_p=args.top_p,
            max_new_tokens=args.max_new_tokens,
            eos_token_id=sorted(eos),
            pad_token_id=tok.pad_token_id,
        )
        # No inference_mode here: the manager's thread updates its tensors outside it.
        out = model.generate_batch(inputs=rows, generation_config=config, progress_bar=False)
        if len(out) != len(rows) or any(r.error for r in out.values()):
            raise RuntimeError(f"generate_batch failed: {[r.error for r in out.values() if r.error][:1]}")
        for request_id, result in out.items():
            i = int(request_id.rsplit("_", 1)[1]) % len(rows)
            ids = completion_tokens(list(result.generated_tokens), eos)
            tokens += len(ids)
            texts[(i, k)] = tok.decode(ids, skip_special_tokens=True).strip()
    return Run(time.perf_counter() - started, tokens, texts)
