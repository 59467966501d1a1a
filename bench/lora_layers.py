"""DPO step cost with LoRA on every decoder block vs on the last N: one forward + backward on the default model.

    python -m bench.lora_layers [--layers 10] [--batch 8] [--tokens 340] [--repeats 3] [--rounds 2] [--cache-dir DIR]

The batch stands for a DPO micro-batch of 4 pairs (chosen and rejected: 8 sequences) of the demo's length
(~240 prompt + ~100 response tokens). Arms alternate over rounds; each figure is the median step time, and the
ratio is all-blocks over last-N measured in the same run. Only the backward pass differs: autograd stops below
the lowest block that holds a trainable weight.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def step_seconds(model, ids, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        times.append(time.perf_counter() - started)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=10, help="adapt the last N blocks in the second arm")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=340)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cache-dir", default=None, help="where the converted default model is cached")
    args = p.parse_args(argv)

    import copy

    import torch
    from peft import get_peft_model

    from common.settings import Paths, resolve_home
    from models.local import DEFAULT_BASE, Variant, load_variant
    from train.config import build_config
    from train.worker import lora_config

    cache = Path(args.cache_dir) if args.cache_dir else Paths(resolve_home()).models
    local = load_variant(Variant("base", DEFAULT_BASE), cache_dir=cache)
    n_blocks = local.model.config.num_hidden_layers
    ids = torch.randint(
        0,
        local.model.config.vocab_size,
        (args.batch, args.tokens),
        generator=torch.Generator().manual_seed(0),
    )
    arms = {"all blocks": None, f"last {args.layers} blocks": args.layers}
    results: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, layers in arms.items():
            cfg = build_config({"lora_layers": layers, "output_dir": "/tmp/unused"})
            model = get_peft_model(copy.deepcopy(local.model), lora_config(cfg, local.model))
            times = step_seconds(model, ids, args.repeats)
            results[name].append(statistics.median(times[1:] if len(times) > 1 else times))
            del model
    base = statistics.median(results["all blocks"])
    print(
        f"default model, {n_blocks} blocks, batch {args.batch} x {args.tokens} tokens, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); median of {args.rounds} rounds"
    )
    print("| arm | step s (fwd+bwd) | speed-up vs all blocks |\n|---|---:|---:|")
    for name, values in results.items():
        s = statistics.median(values)
        print(f"| {name} | {s:.2f} | {base / s:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
