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
from pathlib import Path

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


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    import transformers

    from bench import report as fmt
    from bench.generation_arms import (
        Run,
        arm_hf_batched,
        arm_hf_continuous,
        arm_naive,
        arm_preflab,
        arm_preflab_before,
        arm_preflab_shared,
        matmul_gflops,
    )
    from bench.generation_micro import micro_benchmarks
    from common.settings import Paths, resolve_home
    from models.local import load_variant
    from models.sampling import SamplingParams
    from models.variants import DEFAULT_BASE, Variant

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
    local.generate(prompts[:2], SamplingParams(0.7, args.top_p, 4), seeds=[0, 1], batch_size=2)
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
    report = fmt.generation_table(
        args, runs, ceiling, params, len(prompts), len(naive_prompts), torch.get_num_threads()
    )
    if args.micro:
        report += "\n\n" + micro_benchmarks(local, prompts, args)
    print(report)
    if args.results:
        command = "python -m bench.generation " + " ".join(argv if argv is not None else sys.argv[1:])
        fmt.append(args.results, f"\n```\n{command}\n```\n\n{report}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
