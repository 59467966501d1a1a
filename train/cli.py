"""`launch.py train`: flags, a progress bar, and a one-line summary."""

from __future__ import annotations

import argparse
import sys

from common.flags import Flag, add_flags, given
from common.vocab import JobStatus
from train.config import PRESETS, PrefLabFields

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 130


# The `train` flags that set a PrefLabDPOConfig field: help and shown default come from the field (common.flags).
# Layered: a flag not given is None, so the YAML file, then the preset, then the dataclass fill the field.
TRAIN_FLAGS = (
    Flag("variant", layered=True),
    Flag("beta", layered=True),
    Flag("learning_rate", "--lr", layered=True),
    Flag("num_train_epochs", "--epochs", layered=True),
    Flag("loss_type", layered=True),
    Flag("limit", layered=True),
    Flag("max_steps", layered=True),
    Flag("report_to", layered=True),
    # transformers 5's name for it is activation_checkpointing; the flag keeps the name people know.
    Flag("activation_checkpointing", "--gradient-checkpointing", layered=True),
    Flag("processes", layered=True),
    Flag("accelerate_config", layered=True, metavar="FILE"),
    Flag("load_in_4bit", layered=True),
)


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `train` flags; unset flags fall back to the YAML file, then the preset."""
    parser.add_argument(
        "--config", metavar="YAML", help="settings file: any PrefLabDPOConfig / DPOConfig field"
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="default", help="base settings (default)"
    )
    add_flags(parser, PrefLabFields, TRAIN_FLAGS)
    parser.add_argument(
        "--include-judge", action="store_true", help="also train on labels the judge stored (--accept)"
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_ID",
        type=int,
        help="continue a failed or cancelled run from its last checkpoint, with its own data and settings",
    )
    return parser


def config_from_args(args: argparse.Namespace):
    """The run's PrefLabDPOConfig: flags over the YAML file over the preset, built where the Train tab builds it."""
    from train.service import dpo_config

    return dpo_config(args.config, args.preset, given(args, TRAIN_FLAGS), include_judge=args.include_judge)


def cmd_train(args: argparse.Namespace, ctx) -> int:
    """Run one DPO training to the end, with a bar on a terminal; PrefLabError propagates as one line."""
    from tqdm import tqdm

    from common.progress import check_stop
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
    if result.status == JobStatus.DONE:
        return EXIT_OK
    return EXIT_CANCELLED if result.status == JobStatus.CANCELLED else EXIT_FAILED
