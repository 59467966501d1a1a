"""Batched, left-padded chat generation with per-row seeds."""

from __future__ import annotations

import logging
import time

from models.sampling import Generation, GumbelSampler, SamplingParams

log = logging.getLogger(__name__)


def generate_batch(
    model,
    tokenizer,
    rows: list[list[int]],
    seeds: list[int],
    params: SamplingParams,
    eos_ids: list[int],
    pad_id: int,
) -> list[Generation]:
    """Generate one completion per prompt-id row; rows are left-padded into a single batch."""
    import torch
    from transformers import LogitsProcessorList

    input_ids, attention = left_pad(rows, pad_id)
    width = input_ids.shape[1]
    config = argmax_generation_config(params.max_new_tokens, eos_ids, pad_id)
    processors = LogitsProcessorList()
    if not params.greedy:
        processors.append(GumbelSampler(seeds, params.temperature, params.top_p))
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=attention.to(model.device),
            generation_config=config,
            logits_processor=processors,
        )
    seconds = (time.perf_counter() - started) / len(rows)
    completions = out[:, width:].cpu().tolist()
    eos = set(eos_ids)
    results = []
    for completion, seed in zip(completions, seeds, strict=True):
        stop = next((i for i, token in enumerate(completion) if token in eos), None)
        # Rows that finished early are padded (often with the EOS id itself); count up to and including EOS only.
        tokens = completion if stop is None else completion[: stop + 1]
        text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
        results.append(
            Generation(
                text=text,
                n_tokens=len(tokens),
                seconds=seconds,
                seed=int(seed),
                finish_reason="length" if stop is None else "stop",
            )
        )
    return results


def left_pad(rows: list[list[int]], pad_id: int):
    """Prompt-id rows as one batch on the CPU: (input_ids, attention_mask), left-padded to the longest row."""
    import torch

    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for b, ids in enumerate(rows):
        # Left padding keeps every prompt's last token in the final column, where generation continues from.
        input_ids[b, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[b, width - len(ids) :] = 1
    return input_ids, attention


def argmax_generation_config(max_new_tokens: int, eos_ids: list[int], pad_id: int):
    """A transformers GenerationConfig that always takes the argmax, for use with `GumbelSampler`.

    For sampling, GumbelSampler has already turned the argmax into a seeded sample. The knobs a model's own
    generation_config could switch on are pinned, so the samples follow exactly the tempered, top-p-truncated
    model distribution the sampler was given.
    """
    from transformers import GenerationConfig

    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=eos_ids,
        pad_token_id=pad_id,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        num_beams=1,
    )
