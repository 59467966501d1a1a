"""PrefLab's command line: `python launch.py [--home DIR] <command> ...` (serve is the default).

Each command is a short handler over the service its tab also calls; ARCHITECTURE.md maps them all.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from common.cli import GENERATE_FLAGS, build_parser  # noqa: F401 - build_parser: tests and users import it from here
from common.errors import PrefLabError, UserInputError
from common.progress import STOP, Bar

log = logging.getLogger("preflab")
T = TypeVar("T")

EXIT_OK, EXIT_USER, EXIT_INTERRUPTED = 0, 2, 130
# Commands that run a job: SIGTERM stops them like Ctrl-C (job row cancelled, stored work kept, one line).
JOB_COMMANDS = frozenset({"generate", "judge", "eval", "train", "sft"})


def _context(args):
    from common.context import AppConfig, build_context

    kwargs = {
        "device": getattr(args, "model_device", "auto"),
        "dtype": getattr(args, "model_dtype", "auto"),
        "device_map": getattr(args, "device_map", "none"),
    }
    memory = getattr(args, "model_memory_gb", None)
    if memory is not None:
        if memory <= 0:
            raise UserInputError(f"--model-memory-gb must be positive, got {memory}")
        kwargs["model_memory"] = int(memory * 1e9)
    if args.home:
        kwargs["home"] = args.home
    return build_context(AppConfig(**kwargs))


def cmd_serve(args) -> int:
    from common.access import parse_auth
    from webui.app import serve

    access = parse_auth(args.auth)  # a bad users file stops here, before the home is opened
    serve(_context(args), access, host=args.host, port=args.port)
    return EXIT_OK


def cmd_models(args) -> int:
    if args.models_cmd in ("export-merged", "export-adapter"):
        return cmd_models_export(args)
    from annotate.models_service import describe_variant, register_variant, variant_listing, variant_spec

    ctx = _context(args)
    if args.models_cmd in (None, "list"):
        _print_models(variant_listing(ctx))
        return EXIT_OK
    row = register_variant(ctx, None, variant_spec(args))  # the CLI user owns the home: the admin
    print(f"registered {row.name} ({row.kind}): {describe_variant(row)}")
    return EXIT_OK


def _print_models(listing) -> None:
    print(f"{'name':<22} {'kind':<9} {'base':<40} adapters / fingerprint")
    for m, detail in listing:
        adapters = ", ".join(m.adapters) if m.adapters else "-"
        print(
            f"{m.name:<22} {m.kind:<9} {m.base or '-':<40} {adapters} / {m.fingerprint or 'not loaded yet'}"
        )
        if detail is not None:
            print(f"{'':<22} {detail}")


def cmd_models_export(args) -> int:
    from train.export_service import export_adapter, export_merged

    ctx = _context(args)
    if args.models_cmd == "export-merged":
        # The global --dtype; "auto" keeps the checkpoint's own dtype (the export runs on the CPU).
        report = export_merged(ctx, args.variant, args.dir, dtype=getattr(args, "model_dtype", "auto"))
    else:
        report = export_adapter(ctx, args.variant, args.dir)
    print(report.text())
    return EXIT_OK


def cmd_stats(args) -> int:
    from annotate.stats import format_stats, stats_report

    report = stats_report(_context(args).store)
    print(json.dumps(report, sort_keys=True) if args.json else format_stats(report["counts"], report))
    return EXIT_OK


def cmd_import(args) -> int:
    from annotate.data_cli import cmd_import_preferences

    return cmd_import_preferences(args, _context(args))


def cmd_export(args) -> int:
    from annotate.data_cli import cmd_export as run_export

    return run_export(args, _context(args))


def cmd_train(args) -> int:
    from train.cli import cmd_train as run_train_command

    return run_train_command(args, _context(args))


def cmd_eval(args) -> int:
    from evaluate.eval_cli import cmd_eval as run_eval_command

    return run_eval_command(args, _context(args))


def cmd_sft(args) -> int:
    from common.flags import given
    from train.sft import sft_run_config
    from train.sft_config import SFT_FLAGS
    from train.sft_service import sft_here

    cfg = sft_run_config(**given(args, SFT_FLAGS))  # as the Train tab's Demo SFT form builds it
    ctx = _context(args)
    # The Demo SFT button's `train` job, run here.
    _job_id, result = _with_bar(
        "sft", "step", sft_here, ctx, cfg, base=args.base, output_name=args.output_name
    )
    print(
        f"run #{result['run_id']}: {result['steps']} steps on {result['examples']} examples in {result['seconds']} s, "
        f"train loss {result['train_loss']:.3f}; registered variant `{result['variant']}`"
    )
    return EXIT_OK


def cmd_judge(args) -> int:
    from annotate.judging import build_judge, judge_all

    # Built before the home is opened: a bad --rubric stops without touching it.
    judge = build_judge(args.judge, model=args.model, rubric_path=args.rubric)
    ctx = _context(args)
    options = dict(limit=args.limit, batch=args.batch, poll_interval=args.poll_interval, accept=args.accept)
    report = _with_bar("judging", "pair", judge_all, ctx, judge, **options)
    print(report.summary(judge.label))
    return EXIT_OK


def _floats(flag: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserInputError(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def cmd_generate(args) -> int:
    from annotate.generation import GenerateConfig, GenerateResult
    from annotate.service import generate_here
    from common.flags import given

    values = {**given(args, GENERATE_FLAGS), "temperatures": _floats("--temperatures", args.temperatures)}
    cfg = GenerateConfig.from_values(args.preset, **values)
    ctx = _context(args)
    # The Generate pairs button's job, run here.
    job_id, result = _with_bar("generating", "resp", generate_here, ctx, cfg)
    print(f"job #{job_id}: {GenerateResult.from_dict(result).summary()}")
    return EXIT_OK


def _with_bar(desc: str, unit: str, service: Callable[..., T], *args, **kwargs) -> T:
    """`service(*args, progress=bar, **kwargs)` with a progress bar closed however it ends; the bar's stop check
    raises KeyboardInterrupt at the next report after Ctrl-C/SIGTERM."""
    bar = Bar(desc, unit)
    try:
        return service(*args, progress=bar, **kwargs)
    finally:
        bar.close()


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "models": cmd_models,
    "stats": cmd_stats,
    "generate": cmd_generate,
    "judge": cmd_judge,
    "import": cmd_import,
    "sft": cmd_sft,
    "export": cmd_export,
    "eval": cmd_eval,
    "train": cmd_train,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; PrefLab errors become one line on stderr and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if not sys.stderr.isatty():
        # Library progress bars (datasets, transformers) would bury the one-line results in logs.
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    command = args.command or "serve"
    if args.command is None:  # `python launch.py` alone serves with the defaults
        args = build_parser().parse_args([*argv, "serve"])
    previous = _stop_on_signals() if command in JOB_COMMANDS else None
    try:
        return COMMANDS[command](args)
    except PrefLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print(
            "interrupted: stopped cleanly, what was stored is kept; run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            STOP.clear()


def _stop_on_signals() -> dict | None:
    """Ctrl-C and SIGTERM stop a job command at its next progress report (outside any database write); a second
    one stops it at once. Returns the handlers to restore (None off the main thread, where none can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(_signum, _frame):
        if STOP.is_set():
            raise KeyboardInterrupt
        STOP.set()

    return {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}


if __name__ == "__main__":
    sys.exit(main())
