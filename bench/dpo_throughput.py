"""DPO throughput: TRL's reference forward every step, TRL's precompute pass, and PrefLab's reference cache.

    python -m bench.dpo_throughput --model tiny
    python -m bench.dpo_throughput --model default --pairs 8 --steps 2 [--cache-dir DIR] [--rounds N]

On a shared 2-core CPU one real-model step at batch 2 takes about a minute, so bench/RESULTS.md records a cut
real-model run (--pairs 2 --steps 1 --batch 2). Every run here is one epoch when steps x batch = pairs, so the
reference passes cover exactly the pairs trained on; with fewer steps they also score pairs never trained on.

All arms train the same LoRA policy on the same triples with the same seed and config (report_to none, no eval,
no KL estimate), in this process, each on a fresh copy of the SFT variant's weights:

  trl-default     TRL's DPOTrainer, precompute_ref_log_probs=False: a reference forward (adapter disabled) per step
  trl-precompute  TRL's DPOTrainer, precompute_ref_log_probs=True: its reference pass over the data set runs in
                  __init__ (plus its hash of the weights) and is timed with the arm
  preflab-cold    train.refcache.fill_ref_logps into an empty store (fingerprint + one scoring pass over the
                  misses), then CachedRefDPOTrainer: PrefLab's first run over these triples
  preflab-warm    the same again over the same store: every reference log-prob is a cache hit, zero reference
                  forwards; PrefLab's second run (a re-run, a beta sweep)

An arm's time runs from the reference work through trainer construction (tokenization, LoRA wrapping) to the end
of `train()`; loading and copying the weights is outside every arm. `ref fwd` counts no-grad forwards of the
backbone, with a hook on the model (there is no eval and no KL estimate, so those are exactly the reference
forwards). Arms run in rounds in a rotated order; every figure is a median over rounds, and every ratio is against
trl-default measured in the same run. The beta sweep trains once per beta: TRL default x3 (and TRL precompute x3)
against PrefLab's one cold fill plus three warm runs, end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report as fmt  # noqa: E402 - after the path, so `python bench/dpo_throughput.py` works too
from bench.dpo_arms import ARMS, Bench, Timing, make_config  # noqa: E402
from bench.servers import offline_defaults  # noqa: E402

offline_defaults()
WRONG_SEVERITY = {"SEV1": "SEV4", "SEV2": "SEV4", "SEV3": "SEV1", "SEV4": "SEV1"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("tiny", "default"), default="tiny")
    p.add_argument("--pairs", type=int, default=16, help="preference triples in the data set")
    p.add_argument("--steps", type=int, default=4, help="max_steps of every training run")
    p.add_argument("--batch", type=int, default=4, help="per-device train batch (gradient accumulation 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--betas", default="0.05,0.1,0.5", help="the beta sweep (the arms table uses the first)")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="repeat every arm, rotating the order (default: 9 tiny, 1 default)",
    )
    p.add_argument(
        "--sweep-rounds",
        type=int,
        default=None,
        help="repeat the whole beta sweep (default: 5 tiny, 1 default)",
    )
    p.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="an untimed 1-pair, 1-step run of each path first (first-call costs); skip when steps take minutes",
    )
    p.add_argument(
        "--sweep-precompute",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also sweep TRL with precompute_ref_log_probs=True (x betas)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    home = os.environ.get("PREFLAB_HOME")
    p.add_argument(
        "--cache-dir",
        default=str(Path(home) / "models") if home else "./preflab_home/models",
        help="where the converted default model is cached (default: $PREFLAB_HOME/models or ./preflab_home/models)",
    )
    args = p.parse_args(argv)
    try:
        args.beta_list = [float(b) for b in args.betas.split(",") if b.strip()]
    except ValueError:
        p.error(f"--betas must be comma-separated numbers, got {args.betas!r}")
    if not args.beta_list or any(b <= 0 for b in args.beta_list):
        p.error(f"--betas must be positive numbers, got {args.betas!r}")
    tiny = args.model == "tiny"
    args.rounds = args.rounds if args.rounds is not None else (9 if tiny else 1)
    args.sweep_rounds = args.sweep_rounds if args.sweep_rounds is not None else (5 if tiny else 1)
    for name in ("pairs", "steps", "batch", "rounds", "sweep_rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# -- data and models -----------------------------------------------------------------------------------------


def demo_triples(n: int) -> list[tuple[list[dict], str, str]]:
    """Incident prompts; chosen = the gold triage, rejected = the wrong severity with a vague summary and steps."""
    rows = [json.loads(line) for line in (ROOT / "data" / "incidents.jsonl").read_text().splitlines() if line]
    rows = sorted((r for r in rows if r["split"] == "train"), key=lambda r: r["id"])[:n]
    if len(rows) < n:
        raise SystemExit(f"data/incidents.jsonl has only {len(rows)} train rows, asked for {n}")
    out = []
    for row in rows:
        service = row["service"]
        rejected = (
            f"Severity: {WRONG_SEVERITY[row['gold_severity']]}\n"
            f"Summary: Something seems to be wrong with {service}.\n"
            f"Next steps:\n- Look into {service}.\n- Keep an eye on it."
        )
        out.append(([{"role": "user", "content": row["prompt"]}], row["gold"], rejected))
    return out


def load_reference(args, workdir: Path):
    """(the SFT variant as a LocalModel, triples): tiny Llama + merged non-zero SFT adapter, or the default model."""
    from models.local import DEFAULT_BASE, Variant, load_variant

    if args.model == "default":
        local = load_variant(Variant("base", DEFAULT_BASE), cache_dir=args.cache_dir)
        return local, demo_triples(args.pairs)
    import torch
    from transformers import AutoTokenizer

    from tests.models.tiny_models import build_tiny_model, build_tokenizer, save_lora
    from tests.train.dpo_fixtures import triples

    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(workdir / "tokenizer"))
    base = workdir / "base"
    build_tiny_model(tokenizer, seed=0, dtype=torch.float32).save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapter = save_lora(base, workdir / "sft", seed=1, targets=["q_proj", "v_proj"])
    variant = Variant("sft", str(base), (str(adapter),))
    local = load_variant(variant, cache_dir=workdir / "cache", dtype="float32")
    return local, triples(args.pairs, seed=args.seed)


# -- the two experiments -------------------------------------------------------------------------------------


def warm_up(bench: Bench, beta: float) -> None:
    """One untimed 1-pair, 1-step run of each trainer path: first-call costs (lazy imports, kernels) land here."""
    bench.small = True
    bench.trl(beta, precompute=False)
    bench.trl(beta, precompute=True)
    bench.new_store()
    bench.preflab(beta)
    bench.small = False
    _progress("warm-up done")


def run_arms(bench: Bench, beta: float, rounds: int) -> dict[str, list[Timing]]:
    """Every arm once per round, in a rotated order; preflab-warm always right after its own cold run."""
    units = ("trl-default", "trl-precompute", "preflab")
    out: dict[str, list[Timing]] = {a: [] for a in ARMS}
    for r in range(rounds):
        order = units[r % len(units) :] + units[: r % len(units)]
        for unit in order:
            if unit == "preflab":
                bench.new_store()
                out["preflab-cold"].append(bench.preflab(beta))
                out["preflab-warm"].append(bench.preflab(beta))
                took = f"cold {out['preflab-cold'][-1].seconds:.2f} s, warm {out['preflab-warm'][-1].seconds:.2f} s"
            else:
                out[unit].append(bench.trl(beta, precompute=unit == "trl-precompute"))
                took = f"{out[unit][-1].seconds:.2f} s"
            _progress(f"round {r + 1}/{rounds}: {unit} {took}")
    return out


def run_sweep(bench: Bench, betas: list[float], rounds: int, precompute: bool) -> dict[str, list[float]]:
    """End-to-end seconds of a beta sweep per strategy; runs interleaved beta by beta."""
    strategies = ["trl-default", "trl-precompute", "preflab"] if precompute else ["trl-default", "preflab"]
    out: dict[str, list[float]] = {k: [] for k in strategies}
    ref_forwards: dict[str, int] = {k: 0 for k in out}
    for r in range(rounds):
        totals = dict.fromkeys(out, 0.0)
        bench.new_store()
        for i, beta in enumerate(betas):
            k = (i + r) % len(strategies)
            order = strategies[k:] + strategies[:k]
            for strategy in order:
                if strategy == "preflab":
                    t = bench.preflab(beta)  # the first beta fills the empty store: the sweep's one cold fill
                else:
                    t = bench.trl(beta, precompute=strategy == "trl-precompute")
                totals[strategy] += t.seconds
                _progress(f"sweep {r + 1}/{rounds}: beta {beta} {strategy} {t.seconds:.2f} s")
                ref_forwards[strategy] += t.ref_forwards if r == 0 else 0
        for k, v in totals.items():
            out[k].append(v)
    out["_ref_forwards"] = ref_forwards  # type: ignore[assignment]
    return out


# -- report --------------------------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    import logging

    import datasets
    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dpo-bench-") as tmp:
        workdir = Path(tmp)
        load_before = fmt.load_line("at start")
        local, data = load_reference(args, workdir)
        bench = Bench(args, local, data, workdir)
        header = [
            *fmt.dpo_machine_info(args, local, make_config(args, args.beta_list[0], workdir / "cfg")),
            load_before,
        ]
        for line in header:
            print(line, flush=True)
        if args.warmup:
            warm_up(bench, args.beta_list[0])
        arms = run_arms(bench, args.beta_list[0], args.rounds)
        sweep = run_sweep(bench, args.beta_list, args.sweep_rounds, args.sweep_precompute)
        if bench.store is not None:
            bench.store.close()
        print(fmt.load_line("at end"))
        print(f"bench wall time: {time.perf_counter() - started:.0f} s (loading included)")
        print()
        print("\n".join(fmt.arms_table(arms, bench.trained_pairs, args.beta_list[0])))
        print()
        print("\n".join(fmt.sweep_table(sweep, args.beta_list, bench.trained_pairs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
