"""How the benches lay out what they measured: tables, header lines, the results file. The arms live apart.

bench/generation.py, bench/dpo_throughput.py, bench/annotators.py and bench/gpu_check.py measure; the functions
here only format what they hand over, so a figure's layout can change without touching what is timed.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.dpo_arms import ARMS, BASELINE, Timing
from bench.generation_arms import SETTINGS


def append(path: str | Path, text: str) -> None:
    """Add `text` to the end of a markdown results file (bench/RESULTS.md)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


# -- bench/generation.py ---------------------------------------------------------------------------------------


def generation_table(args, runs, ceiling, params, n_prompts, n_naive, threads) -> str:
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


# -- bench/dpo_throughput.py -----------------------------------------------------------------------------------


def dpo_machine_info(args, local, cfg) -> list[str]:
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


# -- bench/annotators.py ---------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) in milliseconds; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def annotators_table(phases: list, stored: dict[str, dict]) -> str:
    """One row per phase: latency against the no-op baseline, errors, duplicates, lost votes."""
    head = (
        "| phase | annotators | votes | votes/s | p50 ms | p99 ms | max ms | no-op p50 / p99 ms | "
        "p99 / no-op p99 | server CPU | errors | pairs shown to 2+ | pairs labelled by 2+ | acknowledged | stored | "
        "lost |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for ph in phases:
        s = stored.get(ph.name, {})
        shown_twice = sum(1 for names in ph.shown.values() if len(names) > 1)
        p99, base99 = pct(ph.latencies, 0.99), pct(ph.baseline, 0.99)
        lines.append(
            f"| {ph.name} | {ph.annotators} | {len(ph.latencies)} | {len(ph.latencies) / max(ph.seconds, 1e-9):.1f} | "
            f"{pct(ph.latencies, 0.5):.0f} | {p99:.0f} | {max(ph.latencies, default=0) * 1000:.0f} | "
            f"{pct(ph.baseline, 0.5):.0f} / {base99:.0f} | {p99 / base99:.1f}x | {ph.server_cpu:.0%} | "
            f"{len(ph.errors)} | {shown_twice} | "
            f"{s.get('pairs_two_annotators', '?')} | {len(ph.acked)} | {s.get('stored', '?')} | "
            f"{s.get('lost', '?')} (+{s.get('doubled', '?')} doubled) |"
        )
    return "\n".join(lines)


def annotators_notes(
    phases: list, stored: dict[str, dict], handler: dict, load_before, target_p99_ms: float
) -> list[str]:
    """The lines under the table: machine load, target, the handler alone, the generation job, errors."""
    gen = stored.get("generation")
    notes = [
        f"- cores: {os.cpu_count()}, load average (1/5/15 min) at start: {', '.join(f'{x:.1f}' for x in load_before)}"
        " (the annotator clients run on the same machine as the server)",
        f"- target: p99 < {target_p99_ms:.0f} ms idle, 0 errors, 0 duplicate assignments, 0 lost votes",
    ]
    notes.append(
        f"- the handler alone (in-process, no HTTP, after the server stopped; {handler['n']} votes): "
        f"LabelService.vote p50 {handler['vote']:.0f} ms + store.counts() p50 {handler['counts']:.0f} ms "
        "(the tab needs the counts only for its empty state, not on a vote that shows a pair)"
    )
    if gen:
        notes.append(
            f"- generating: job {gen['job']} (the default model, in the serving process) wrote {gen['during']} "
            f"responses while the annotators voted, {gen['total']} in all; server CPU shows the load"
        )
    for ph in phases:
        if ph.baseline_rejected:
            notes.append(
                f"- {ph.name}: {len(ph.baseline_rejected)} of {len(ph.baseline)} no-op calls came back as an "
                f"AppError after the handler returned (Gradio rejects an empty dict return; timed all the same)"
            )
        if ph.exhausted:
            notes.append(f"- {ph.name}: {ph.exhausted} votes found the queue empty (raise --pairs)")
        for err in ph.errors[:3]:
            notes.append(f"- {ph.name} error: {err}")
    return notes


# -- bench/gpu_check.py ----------------------------------------------------------------------------------------


@dataclass
class CheckReport:
    """bench/gpu_check.py: lines as they happen, the comparison table, and whether any check failed."""

    started: float = field(default_factory=time.monotonic)
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def row(self, check: str, cpu: str = "", gpu: str = "", ratio: str = "", note: str = "") -> None:
        self.rows.append((check, cpu, gpu, ratio, note))

    def skip(self, check: str, why: str) -> None:
        self.say(f"SKIP {check}: {why}")
        self.row(check, note=f"skipped: {why}")

    def fail(self, check: str, why: str) -> None:
        self.say(f"FAIL {check}: {why}")
        self.failed.append(check)
        self.row(check, note=f"FAILED: {why}")

    def table(self) -> str:
        lines = ["| check | CPU | GPU | GPU/CPU | note |", "| --- | --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)
