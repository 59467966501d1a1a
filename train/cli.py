"""`launch.py train`: flags, a progress bar, and a one-line summary."""

from __future__ import annotations

import argparse
import sys

from train.config import PRESETS

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 130


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `train` flags; unset flags fall back to the YAML file, then the preset."""
    parser.add_argument("--variant", help="starting variant and DPO reference (default sft)")
    parser.add_argument(
        "--config", metavar="YAML", help="settings file: any PrefLabDPOConfig / DPOConfig field"
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="default", help="base settings (default)"
    )
    parser.add_argument(
        "--beta", type=float, help="DPO beta: higher keeps the policy closer to the reference"
    )
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--epochs", type=float, help="passes over the training triples")
    parser.add_argument(
        "--loss-type", help="TRL loss: sigmoid, ipo, hinge, robust, ... (comma-separated to mix)"
    )
    parser.add_argument("--limit", type=int, help="train on at most this many triples")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument(
        "--include-judge", action="store_true", help="also train on labels the judge stored (--accept)"
    )
    parser.add_argument("--report-to", help="extra loggers: tensorboard, wandb (when installed), none")
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        default=None,
        help="recompute activations in the backward pass: less memory for long pairs or big models, ~20%% slower",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_ID",
        type=int,
        help="continue a failed or cancelled run from its last checkpoint, with its own data and settings",
    )
    parser.add_argument(
        "--processes", type=int, help="worker processes, one per GPU (torchrun with gloo on a CPU; default 1)"
    )
    parser.add_argument(
        "--accelerate-config",
        metavar="FILE",
        help="launch the worker with this `accelerate config` YAML (DeepSpeed, FSDP): train/accelerate_configs/",
    )
    parser.add_argument(
        "--load-in-4bit",
        action="store_true",
        default=None,
        help="QLoRA: the variant in 4-bit NF4 on a CUDA GPU (pip install 'preflab[qlora]')",
    )
    return parser


def config_from_args(args: argparse.Namespace):
    """The run's PrefLabDPOConfig: flags over the YAML file over the preset."""
    from train.config import load_config, read_yaml

    overrides = {
        "variant": args.variant,
        "beta": args.beta,
        "learning_rate": args.lr,
        "num_train_epochs": args.epochs,
        "loss_type": args.loss_type,
        "limit": args.limit,
        "max_steps": args.max_steps,
        "report_to": args.report_to,
        "processes": args.processes,
        "accelerate_config": args.accelerate_config,
        "load_in_4bit": args.load_in_4bit,
        "activation_checkpointing": args.gradient_checkpointing,  # transformers 5's name for it
    }
    if args.include_judge:
        sources = None
        if args.config:
            sources = read_yaml(args.config).get("sources")
        base = list(sources or PRESETS[args.preset].get("sources") or ("human", "import"))
        overrides["sources"] = [*base, "judge"]
    return load_config(args.config, args.preset, overrides)


def cmd_train(args: argparse.Namespace, ctx) -> int:
    """Run one DPO training to the end, with a bar on a terminal; PrefLabError propagates as one line."""
    from tqdm import tqdm

    from progress import check_stop
    from train.service import run_training

    cfg = None if getattr(args, "resume", None) is not None else config_from_args(args)
    # disable=None: a bar on a terminal only, so logs and captured stderr keep errors on one line.
    bar = tqdm(desc="dpo", unit="step", dynamic_ncols=True, disable=None)
    phase = {"name": None}

    def progress(p) -> None:
        check_stop()  # Ctrl-C / SIGTERM: stop here, where no database write is under way
        if p.phase != phase["name"]:
            phase["name"] = p.phase
            bar.set_description({"reference": "ref log-probs", "training": "dpo"}.get(p.phase, p.phase))
            bar.unit = "resp" if p.phase == "reference" else "step"
        bar.total = p.total or None
        bar.n = p.step
        post = {}
        for key, label in (
            ("train/loss", "loss"),
            ("train/rewards/margins", "gap"),
            ("eval/rewards/margins", "val_gap"),
            ("train/kl", "kl"),
        ):
            if key in p.latest:
                post[label] = f"{p.latest[key]:.3f}"
        if post:
            bar.set_postfix(post, refresh=False)
        bar.refresh()

    try:
        if cfg is None:
            from train.service import resume_training

            result = resume_training(ctx, args.resume, progress=progress)
        else:
            result = run_training(ctx, cfg, progress=progress)
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.summary_line())
    for line in result.summary.get("serving") or ():  # a finished run: how to serve its adapter on vLLM
        print(line)
    if result.status == "done":
        return EXIT_OK
    return EXIT_CANCELLED if result.status == "cancelled" else EXIT_FAILED
