"""`bench.generation --micro`: per-step costs of the fast generator's pieces against the pieces they replace."""

from __future__ import annotations

import statistics
import time
from unittest import mock

from bench.generation_arms import SETTINGS, sort_top_p_mask


def micro_benchmarks(local, prompts, args) -> str:
    """Per-step costs of the pieces, each against the piece it replaces, interleaved and repeated (medians)."""
    import torch
    from transformers import DynamicCache

    from models import fast_generate as fg
    from models.sampling import GumbelSampler, SamplingParams

    model, tok = local.model, local.tokenizer
    rows = sorted((local._prompt_ids(c) for c in prompts), key=len)[: args.batch_size]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, width - len(r) :] = torch.tensor(r)
        mask[b, width - len(r) :] = 1
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    steps = 8
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            logits_to_keep=1,
        )
        logits = out.logits[:, -1].float()
        layers = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
    token = logits.argmax(-1, keepdim=True)

    def decode_dynamic():
        # transformers' default cache: every step concatenates, copying the whole cache.
        cache = DynamicCache(config=model.config)
        for i, (k, v) in enumerate(layers):
            cache.update(k, v, i)
        m = mask
        with torch.inference_mode():
            for s in range(steps):
                m = torch.cat([m, torch.ones_like(m[:, :1])], dim=-1)
                model(
                    input_ids=token,
                    attention_mask=m,
                    position_ids=positions[:, -1:] + 1 + s,
                    past_key_values=cache,
                )

    def decode_buffer():
        index = torch.arange(len(rows))
        batch = fg._Batch.from_prefill(
            layers, mask, index, [fg._Row(i, 0, None, None, []) for i in index], steps + 1
        )
        with torch.inference_mode():
            for _ in range(steps):
                m = batch.extend_mask()
                model(
                    input_ids=token,
                    attention_mask=m,
                    position_ids=batch.positions[:, None],
                    past_key_values=batch.cache,
                )
                batch.positions += 1

    results = []
    for temperature in SETTINGS:
        params = SamplingParams(temperature, args.top_p, args.max_new_tokens)
        seeds = list(range(len(rows)))
        gumbel = GumbelSampler(seeds, temperature, args.top_p)

        def old_sampler(gumbel=gumbel):
            # PrefLab's logits processor as it was: full vocabulary sort per row for top-p, then argmax.
            import models.sampling

            with mock.patch.object(models.sampling, "top_p_mask", sort_top_p_mask):
                gumbel(None, logits).argmax(-1)

        def hf_sampler(temperature=temperature):
            from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

            warp = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopPLogitsWarper(args.top_p)])
            torch.multinomial(warp(None, logits.clone()).softmax(-1), 1)

        def new_sampler(params=params, seeds=seeds):
            gens = [torch.Generator().manual_seed(s) for s in seeds]
            state = [fg._Row(i, s, params, g, []) for i, (s, g) in enumerate(zip(seeds, gens, strict=True))]
            fg.sample_rows(logits, state, list(range(len(state))))

        results.append(
            (
                f"sampling, t={temperature} (per step, {len(rows)} rows)",
                {
                    "before: GumbelSampler + full sort": old_sampler,
                    "HF TopP warper + multinomial (b)": hf_sampler,
                    "after: partial-sort nucleus": new_sampler,
                },
            )
        )
    results.append(
        (
            f"{steps} decode steps, {len(rows)} rows, prompt width {width}",
            {"DynamicCache (concatenate)": decode_dynamic, "preallocated buffer": decode_buffer},
        )
    )
    lines = ["| piece | variant | median ms | vs first |", "| --- | --- | ---: | ---: |"]
    for title, variants in results:
        times = {name: [] for name in variants}
        for f in variants.values():
            f()  # warm-up
        for _ in range(args.micro_repeats):
            for name, f in variants.items():
                started = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - started)
        first = statistics.median(next(iter(times.values())))
        for name, ts in times.items():
            med = statistics.median(ts)
            lines.append(f"| {title} | {name} | {med * 1e3:.1f} | {med / first:.2f}x |")
    return "\n".join(lines)
