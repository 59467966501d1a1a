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
import copy
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARMS = ("trl-default", "trl-precompute", "preflab-cold", "preflab-warm")
BASELINE = "trl-default"
WRONG_SEVERITY = {"SEV1": "SEV4", "SEV2": "SEV4", "SEV3": "SEV1", "SEV4": "SEV1"}


@dataclass
class Timing:
    """One timed training run of an arm."""

    seconds: float
    setup: float  # reference fill or precompute, tokenization, LoRA wrapping: everything before train()
    ref_forwards: int
    cpu: float = 0.0  # process CPU seconds, all threads: less sensitive than wall time to other jobs' load
    losses: list[float] = field(default_factory=list)


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


def snapshot_rows(data) -> list[dict]:
    """Rows shaped like a run snapshot (prompt/response hashes are the cache keys)."""
    from train.snapshot import triple_columns

    return [triple_columns(prompt, chosen, rejected) for prompt, chosen, rejected in data]


def make_config(args, beta: float, output_dir: Path, steps: int | None = None, batch: int | None = None):
    """PrefLab's DPO config for every arm (the TRL arms set precompute_ref_log_probs on theirs)."""
    from train.config import build_config

    return build_config(
        {
            "beta": beta,
            "max_steps": steps or args.steps,
            "per_device_train_batch_size": batch or args.batch,
            "gradient_accumulation_steps": 1,
            "seed": args.seed,
            "eval_strategy": "no",
            "kl_every": 0,
            "report_to": "none",
            "save_strategy": "no",
            "logging_steps": 1,
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
            "output_dir": str(output_dir),
        }
    )


# -- one timed run -------------------------------------------------------------------------------------------


class RefForwardCounter:
    """Counts no-grad backbone forwards (reference forwards here: no eval, no KL) with a hook on the model."""

    def __init__(self, *causal_lms):
        import torch

        self.count = 0
        self._torch = torch
        self._handles = [m.model.register_forward_hook(self._hook) for m in causal_lms]

    def _hook(self, module, args, output):
        if not self._torch.is_grad_enabled():
            self.count += 1

    def close(self) -> int:
        for h in self._handles:
            h.remove()
        return self.count


class Bench:
    """The SFT variant, its triples, and a fresh policy copy per run."""

    def __init__(self, args, local, data, workdir: Path):
        from train.dpo_trainer import check_trl_path

        check_trl_path()
        self.args, self.local, self.workdir = args, local, workdir
        self.rows = snapshot_rows(data)
        self.trained_pairs = args.steps * args.batch
        self._runs = 0
        self.store = None
        self.small = False  # the untimed warm-up: one pair, one step

    def _fresh(self, beta: float):
        """(policy weights copy, config) for one run; outside the timed region."""
        import transformers

        self._runs += 1
        small = 1 if self.small else None
        cfg = make_config(self.args, beta, self.workdir / f"out{self._runs}", small, small)
        transformers.set_seed(self.args.seed)
        return copy.deepcopy(self.local.model), cfg, [dict(r) for r in self.rows[: small or len(self.rows)]]

    def new_store(self):
        """An empty DuckDB store: the next PrefLab run is cold."""
        from store import Store

        if self.store is not None:
            self.store.close()
        self._runs += 1
        self.store = Store.open(self.workdir / f"store{self._runs}.duckdb")

    def trl(self, beta: float, *, precompute: bool) -> Timing:
        from trl import DPOTrainer

        from train.worker import to_dataset

        policy, cfg, rows = self._fresh(beta)
        # Set after construction: PrefLab's config refuses False in __post_init__.
        cfg.precompute_ref_log_probs = precompute
        counter = RefForwardCounter(policy)
        started, cpu = time.perf_counter(), time.process_time()
        dataset = to_dataset(rows, with_ref=False)
        return self._train(DPOTrainer, policy, cfg, dataset, counter, started, cpu)

    def preflab(self, beta: float) -> Timing:
        """One PrefLab run: fill reference log-probs from the store (scoring misses), then train on them."""
        from train.dpo_trainer import cached_ref_trainer_class
        from train.refcache import fill_ref_logps
        from train.worker import to_dataset

        policy, cfg, rows = self._fresh(beta)
        # A new run re-hashes the weights (the worker does too): count that every time.
        self.local._fingerprint = None
        counter = RefForwardCounter(policy, self.local.model)
        started, cpu = time.perf_counter(), time.process_time()
        fill_ref_logps(
            self.store,
            self.local,
            rows,
            max_length=cfg.max_length,
            truncation_mode=cfg.truncation_mode,
            batch_size=cfg.precompute_ref_batch_size or 8,  # what train.service passes
        )
        dataset = to_dataset(rows)
        return self._train(cached_ref_trainer_class(), policy, cfg, dataset, counter, started, cpu)

    def _train(self, trainer_class, policy, cfg, dataset, counter, started: float, cpu: float) -> Timing:
        """Build the trainer (setup ends here), train, and time both from `started`."""
        from train.worker import lora_config

        trainer = trainer_class(
            model=policy,
            args=cfg,
            train_dataset=dataset,
            processing_class=self.local.tokenizer,
            peft_config=lora_config(cfg),
        )
        _quiet(trainer)
        setup = time.perf_counter() - started
        trainer.train()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        return Timing(seconds, setup, counter.close(), cpu, _losses(trainer))


def _quiet(trainer) -> None:
    """No per-step printing: it would interleave with the report."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _losses(trainer) -> list[float]:
    return [float(r["loss"]) for r in trainer.state.log_history if "loss" in r and "train_runtime" not in r]


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


def machine_info(args, local, cfg) -> list[str]:
    import torch
    import transformers
    import trl

    params = sum(p.numel() for p in local.model.parameters())
    return [
        f"command: python -m bench.dpo_throughput {shlex.join(sys.argv[1:])}".rstrip(),
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
        f"trl {trl.__version__}, python {platform.python_version()}",
        f"model: {args.model} ({local.name}, {params / 1e6:.2f}M params, {local.model.dtype}), "
        f"LoRA r={cfg.lora_r} on {cfg.lora_targets}, lr {cfg.learning_rate}, max_length {cfg.max_length}, "
        f"{args.pairs} pairs, {args.steps} steps x batch {args.batch} "
        f"= {args.steps * args.batch} pairs trained per run, seed {args.seed}",
        f"protocol: {args.rounds} round(s) of the arms, {args.sweep_rounds} sweep(s), "
        f"warm-up {'on' if args.warmup else 'off'}, TRL precompute in the sweep {'on' if args.sweep_precompute else 'off'}",
    ]


def load_line(when: str) -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {when}: {one:.2f} {five:.2f} {fifteen:.2f}"


def arms_table(results: dict[str, list[Timing]], trained_pairs: int, beta: float) -> list[str]:
    base = statistics.median(t.seconds for t in results[BASELINE])
    base_losses = results[BASELINE][0].losses
    lines = [
        f"arms (beta {beta}; medians of {len(results[BASELINE])} rounds; ratio = trl-default seconds / arm seconds)",
        "",
        "| arm | seconds (min-max) | setup s | train s | pairs/s | ratio vs trl-default | cpu s | cpu ratio "
        "| ref fwd | max dloss vs trl-default |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base_cpu = statistics.median(t.cpu for t in results[BASELINE])
    for arm in ARMS:
        runs = results[arm]
        seconds = statistics.median(t.seconds for t in runs)
        setup = statistics.median(t.setup for t in runs)
        train = statistics.median(t.seconds - t.setup for t in runs)
        dloss = max(
            (abs(a - b) for t in runs for a, b in zip(t.losses, base_losses, strict=True)),
            default=float("nan"),
        )
        forwards = sorted({t.ref_forwards for t in runs})
        cpu = statistics.median(t.cpu for t in runs)
        spread = f"{min(t.seconds for t in runs):.2f}-{max(t.seconds for t in runs):.2f}"
        lines.append(
            f"| {arm} | {seconds:.2f} ({spread}) | {setup:.2f} | {train:.2f} | {trained_pairs / seconds:.3g} | "
            f"{base / seconds:.2f}x | {cpu:.2f} | {base_cpu / cpu:.2f}x | {'/'.join(map(str, forwards))} | "
            f"{dloss:.1e} |"
        )
    return lines


def sweep_table(sweep: dict[str, list[float]], betas: list[float], trained_pairs: int) -> list[str]:
    forwards = sweep.pop("_ref_forwards")
    base = statistics.median(sweep["trl-default"])
    n = len(betas)
    labels = {
        "trl-default": f"TRL default x{n}",
        "trl-precompute": f"TRL precompute x{n}",
        "preflab": f"PrefLab cached: 1 cold fill + {n} runs",
    }
    lines = [
        f"beta sweep {','.join(map(str, betas))} end to end (medians of {len(sweep['trl-default'])} sweeps)",
        "",
        "| sweep | seconds (min-max) | pairs/s | ratio vs TRL default | ref fwd |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in labels.items():
        if key not in sweep:
            continue
        seconds = statistics.median(sweep[key])
        spread = f"{min(sweep[key]):.2f}-{max(sweep[key]):.2f}"
        lines.append(
            f"| {label} | {seconds:.2f} ({spread}) | {n * trained_pairs / seconds:.3g} | {base / seconds:.2f}x | "
            f"{forwards[key]} |"
        )
    return lines


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
        load_before = load_line("at start")
        local, data = load_reference(args, workdir)
        bench = Bench(args, local, data, workdir)
        header = [
            *machine_info(args, local, make_config(args, args.beta_list[0], workdir / "cfg")),
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
        print(load_line("at end"))
        print(f"bench wall time: {time.perf_counter() - started:.0f} s (loading included)")
        print()
        print("\n".join(arms_table(arms, bench.trained_pairs, args.beta_list[0])))
        print()
        print("\n".join(sweep_table(sweep, args.beta_list, bench.trained_pairs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
