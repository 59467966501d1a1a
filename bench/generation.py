"""Generation throughput on the default model: the naive loop, batched HF `generate`, and PrefLab's generator.

    python -m bench.generation --prompts 32 --max-new-tokens 128 [--cache-dir DIR] [--results bench/RESULTS.md]

Every arm generates one response per prompt and sampling setting (t=0.7 and t=1.2, top-p 0.95: one pair per
prompt) on the same fixed subset of the demo prompts (data/incidents.jsonl), with the default SmolLM2-135M:

  naive          (a) one `model.generate(do_sample=True, temperature, top_p)` call per prompt and setting
  hf-batched     (b) plain batched `generate` (left padding, prompts in file order), at each --hf-batch-sizes
  hf-continuous  transformers' continuous batching (`model.generate_batch`), one call per setting
  preflab-before (c0) PrefLab before this change: `generate_batch` (HF generate + GumbelSampler with a full
                 sort for top-p) on length-sorted chunks, one call per setting
  preflab        (c) `LocalModel.generate` as annotate/generation.py calls it: one call per setting
  preflab-shared (c) with both settings in one call (`fast_generate.generate_chats`): one prefill per prompt
  preflab-norefill  ablation: (c) shared, finished rows dropped but free slots not refilled

Arms run in rounds, in a rotated order each round, and every figure is a median over rounds. Throughput counts
generated tokens (up to and including EOS). The ceiling is a large fp32 matmul timed before every arm: an arm's
"of ceiling" is tokens/s x 2*params FLOPs against it (prompt tokens not counted, so it understates the work).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ARMS = (
    "naive",
    "hf-batched",
    "hf-continuous",
    "preflab-before",
    "preflab",
    "preflab-shared",
    "preflab-norefill",
)
SETTINGS = (0.7, 1.2)


@dataclass
class Run:
    """One timed pass of an arm over every prompt and setting."""

    seconds: float
    tokens: int
    texts: dict[tuple[int, int], str]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=32, help="demo prompts in the fixed subset")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument(
        "--batch-sizes",
        default="16",
        help="PrefLab's batch sizes (16: GenerateConfig's default); first for --micro",
    )
    p.add_argument("--hf-batch-sizes", default="4,8,16,32", help="batch sizes tried for (b)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    p.add_argument("--rounds", type=int, default=1, help="repeat every arm, rotating the order")
    p.add_argument(
        "--naive-prompts", type=int, default=None, help="run (a) on the first N prompts only (it is slow)"
    )
    p.add_argument("--micro", action="store_true", help="also time the pieces: sampler, KV cache")
    p.add_argument("--micro-repeats", type=int, default=7)
    p.add_argument("--naive-rounds", type=int, default=None, help="run (a) in the first N rounds only")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--cache-dir", default=None, help="where the converted default model is cached")
    p.add_argument("--results", default=None, help="append the command and the table to this markdown file")
    args = p.parse_args(argv)
    unknown = {a for a in args.arms.split(",") if a} - set(ARMS)
    if unknown:
        p.error(f"unknown arms: {', '.join(sorted(unknown))}")
    return args


def demo_prompts(n: int) -> list[list[dict]]:
    """A fixed, evenly spread subset of the demo prompts as single-turn chats."""
    rows = [json.loads(line) for line in (ROOT / "data" / "incidents.jsonl").read_text().splitlines() if line]
    rows.sort(key=lambda r: r["id"])
    step = max(1, len(rows) // n)
    return [[{"role": "user", "content": r["prompt"]}] for r in rows[::step][:n]]


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


def _sort_top_p_mask(logits, top_p: float):
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
    with mock.patch.object(models.sampling, "top_p_mask", _sort_top_p_mask):
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

            with mock.patch.object(models.sampling, "top_p_mask", _sort_top_p_mask):
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


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    import transformers

    from models.local import load_variant
    from models.variants import DEFAULT_BASE, Variant
    from settings import Paths, resolve_home

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    cache_dir = args.cache_dir or Paths(resolve_home()).models
    local = load_variant(Variant("base", DEFAULT_BASE), cache_dir=cache_dir)
    params = sum(p.numel() for p in local.model.parameters())
    prompts = demo_prompts(args.prompts)
    naive_prompts = prompts[: args.naive_prompts] if args.naive_prompts else prompts
    hf_sizes = [int(s) for s in args.hf_batch_sizes.split(",") if s]

    pf_sizes = [int(s) for s in args.batch_sizes.split(",") if s]
    args.batch_size = pf_sizes[0]
    preflab_arms = {
        "preflab-before": arm_preflab_before,
        "preflab": arm_preflab,
        "preflab-shared": arm_preflab_shared,
        "preflab-norefill": lambda local, prompts, a: arm_preflab_shared(local, prompts, a, refill=False),
    }
    jobs: list[tuple[str, object]] = []
    for arm in [a for a in args.arms.split(",") if a]:
        if arm == "naive":
            jobs.append(("naive", lambda: arm_naive(local, naive_prompts, args)))
        elif arm == "hf-continuous":
            jobs.append(("hf-continuous", lambda: arm_hf_continuous(local, prompts, args)))
        elif arm == "hf-batched":
            for size in hf_sizes:
                jobs.append(
                    (f"hf-batched bs={size}", lambda size=size: arm_hf_batched(local, prompts, args, size))
                )
        else:
            # The ablations (before, no refill) run at the first batch size only.
            sizes = pf_sizes if arm in ("preflab", "preflab-shared") else pf_sizes[:1]
            for size in sizes:
                sized = argparse.Namespace(**{**vars(args), "batch_size": size})
                jobs.append((f"{arm} bs={size}", lambda f=preflab_arms[arm], a=sized: f(local, prompts, a)))

    # Warm-up: the first forwards pay one-off allocation and kernel selection costs.
    local.generate(prompts[:2], _params(0.7, args.top_p, 4), seeds=[0, 1], batch_size=2)
    runs: dict[str, list[Run]] = {name: [] for name, _ in jobs}
    ceilings: list[float] = []
    for r in range(args.rounds):
        shift = r % max(1, len(jobs))
        rotated = jobs[shift:] + jobs[:shift]
        for name, job in rotated:
            if name == "naive" and args.naive_rounds is not None and r >= args.naive_rounds:
                continue
            ceilings.append(matmul_gflops())
            run = job()
            runs[name].append(run)
            print(
                f"round {r + 1} {name}: {run.seconds:.1f}s, {run.tokens} tokens, {run.tokens / run.seconds:.1f} tok/s",
                file=sys.stderr,
                flush=True,
            )
    ceiling = statistics.median(ceilings) if ceilings else matmul_gflops()
    report = format_report(
        args, runs, ceiling, params, len(prompts), len(naive_prompts), torch.get_num_threads()
    )
    if args.micro:
        report += "\n\n" + micro_benchmarks(local, prompts, args)
    print(report)
    if args.results:
        command = "python -m bench.generation " + " ".join(argv if argv is not None else sys.argv[1:])
        with open(args.results, "a", encoding="utf-8") as fh:
            fh.write(f"\n```\n{command}\n```\n\n{report}\n")
    return 0


def _params(temperature, top_p, max_new_tokens):
    from models.sampling import SamplingParams

    return SamplingParams(temperature, top_p, max_new_tokens)


def format_report(args, runs, ceiling, params, n_prompts, n_naive, threads) -> str:
    """A markdown table: tokens/s, pairs/minute, fraction of the matmul ceiling, ratios to (a) and best (b)."""
    rows = {}
    for name, rs in runs.items():
        prompts = n_naive if name == "naive" else n_prompts
        rate = statistics.median(r.tokens / r.seconds for r in rs)
        pairs = statistics.median(prompts / r.seconds * 60 for r in rs)
        rows[name] = (rate, pairs, statistics.median(r.tokens for r in rs) / (prompts * len(SETTINGS)))
    hf = {n: v for n, v in rows.items() if n.startswith("hf-batched")}
    best_hf = max(hf, key=lambda n: hf[n][0]) if hf else None
    naive = rows.get("naive")
    lines = [
        f"SmolLM2-135M-Instruct fp32 ({params / 1e6:.1f}M params), {n_prompts} demo prompts x "
        f"t={'/'.join(str(t) for t in SETTINGS)} top_p={args.top_p}, max_new_tokens={args.max_new_tokens}, "
        f"torch threads={threads}, rounds={args.rounds} (medians); "
        f"matmul ceiling {ceiling:.1f} GFLOP/s (median of {sum(len(r) for r in runs.values())} timings, "
        "one before each arm)",
        "",
        "| arm | tokens/s | pairs/min | tokens/response | of ceiling | vs (a) naive | vs (b) best batched |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (rate, pairs, per) in rows.items():
        label = f"{name} (best b)" if name == best_hf else name
        frac = rate * 2 * params / (ceiling * 1e9)
        vs_a = f"{rate / naive[0]:.2f}x" if naive else "-"
        vs_b = f"{rate / hf[best_hf][0]:.2f}x" if best_hf else "-"
        lines.append(f"| {label} | {rate:.1f} | {pairs:.1f} | {per:.0f} | {frac:.2%} | {vs_a} | {vs_b} |")
    if n_naive != n_prompts and naive:
        lines.append(
            f"\n(a) ran on the first {n_naive} prompts only; its rates are per token, so comparable."
        )
    same = _agreement(runs)
    if same:
        lines.append("")
        lines.append(same)
    return "\n".join(lines)


def _agreement(runs) -> str:
    """How many responses each PrefLab arm shares exactly with the previous generator (same seeds)."""
    base = next((rs for name, rs in runs.items() if name.startswith("preflab-before")), None)
    if not base:
        return ""
    parts = []
    for name, rs in runs.items():
        if name.startswith("preflab") and not name.startswith("preflab-before"):
            a, b = base[0].texts, rs[0].texts
            parts.append(f"{name} {sum(a[k] == b.get(k) for k in a)}/{len(a)}")
    return "Identical responses to preflab-before (same seeds, fp32): " + ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
