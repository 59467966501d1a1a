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

from common.errors import PrefLabError, UserInputError
from common.flags import Flag, HelpFormatter, add_flags
from common.progress import STOP, Bar

log = logging.getLogger("preflab")

EXIT_OK, EXIT_USER, EXIT_INTERRUPTED = 0, 2, 130
# Commands that run a job: SIGTERM stops them like Ctrl-C (job row cancelled, stored work kept, one line).
JOB_COMMANDS = frozenset({"generate", "judge", "eval", "train", "sft"})

# The `generate` flags: help and defaults are GenerateConfig's fields (common.flags). --per-prompt is layered: when
# it is not given, --preset demo's K=4 applies.
GENERATE_FLAGS = (
    Flag("variant"),
    Flag("split"),
    Flag("limit"),
    Flag("per_prompt", layered=True),
    Flag("temperatures"),  # comma-separated text; cmd_generate reads the numbers
    Flag("top_p"),
    Flag("max_new_tokens"),
    Flag("batch_size"),
    Flag("concurrency"),
    Flag("strategy"),
    Flag("seed"),
)


class CliParser(argparse.ArgumentParser):
    """argparse that reports a user mistake as one line and exit code 2, without the usage dump; its --help shows
    the default of every flag generated from a settings dataclass."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str):  # noqa: D102 - argparse API
        raise UserInputError(f"{self.prog}: {message} (see --help)")


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve the browser UI (default)", description="Serve the PrefLab UI.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--auth",
        metavar="USERS_FILE",
        help="a file of USER:PASS[:ROLE] lines (role annotator or admin; default annotator); "
        "USER:PASS alone is one admin, but shows in the process list, so prefer the file",
    )


def _add_models(sub) -> None:
    from annotate.models_service import SERVING_FLAGS, VARIANT_FLAGS, VariantSpec
    from common.flags import field_help
    from common.serving import Serving

    p = sub.add_parser("models", help="list or register model variants", description="Model variants.")
    msub = p.add_subparsers(dest="models_cmd", metavar="{list,add}", parser_class=CliParser)
    msub.add_parser("list", help="list registered variants")
    a = msub.add_parser(
        "add",
        help="register a variant: a base plus ordered LoRA adapters and/or an inference server (bring your SFT)",
        description="Register a variant: local weights (--base, --adapter) for training and reference scoring, "
        "and/or an OpenAI-compatible server (--endpoint, --served-model) that then does its generation. "
        "With only --endpoint, an existing variant without one (e.g. the demo sft) gains it.",
    )
    a.add_argument("name", help=field_help(VariantSpec, "name"))
    add_flags(a, VariantSpec, VARIANT_FLAGS)  # --base, --adapter, --kind
    # --endpoint, --served-model, --api-key-env, --lora-module, --revision
    add_flags(a, Serving, SERVING_FLAGS)
    _add_models_export(msub)


def _add_models_export(msub) -> None:
    """`models export-merged` / `models export-adapter`: a variant for an inference server (admin)."""
    e = msub.add_parser(
        "export-merged",
        help="write a variant merged (base + adapters) as a checkpoint a server can load as its base",
        description="Write VARIANT's base with all its adapters merged (safetensors, config, tokenizer) to DIR, "
        "in the checkpoint's dtype (or the global --dtype); its DPO adapters (sft+dpo@N) are then LoRA modules on it. DIR must be new "
        "or empty.",
    )
    e.add_argument("variant", metavar="VARIANT", help="variant name, e.g. sft")
    e.add_argument("dir", metavar="DIR", help="a new or empty folder")
    e = msub.add_parser(
        "export-adapter",
        help="write one LoRA adapter equal to all of a variant's adapters, for a server of its base",
        description="Combine VARIANT's adapters (e.g. SFT + DPO) into one LoRA adapter on its original base "
        "(PEFT cat combination, checked exact module by module). DIR must be new or empty.",
    )
    e.add_argument("variant", metavar="VARIANT", help="variant name, e.g. sft+dpo@3")
    e.add_argument("dir", metavar="DIR", help="a new or empty folder")


def _add_import(sub) -> None:
    p = sub.add_parser(
        "import",
        help="import prompts (or preference data)",
        description="Import prompts from JSONL (.gz), JSON, CSV, Parquet or a Hugging Face dataset; "
        "rows need a `prompt` or `messages` column. The demo prompts: data/incidents.jsonl.",
    )
    p.add_argument("source", metavar="FILE_OR_DATASET")
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "prompts", "trl", "trl-conversational", "ultrafeedback", "hh-rlhf"],
        help="what the rows hold (default auto: guessed from the columns)",
    )
    p.add_argument(
        "--split", default=None, help="dataset split to read, or train/heldout for rows naming none"
    )
    p.add_argument("--heldout-percent", type=float, default=10, help="share held out when rows name no split")
    p.add_argument("--seed", type=int, default=0, help="recorded seed of the split assignment")
    p.add_argument("--skip-bad", action="store_true", help="skip and count malformed rows")
    p.add_argument("--review", action="store_true", help="queue imported pairs for human review in Annotate")
    from annotate.import_limits import add_limit_arguments

    add_limit_arguments(p)  # --max-bytes, --max-line-bytes, --max-cell-bytes


def _add_jobs(sub) -> None:
    """sft, generate, judge, train, eval (the commands that run a model job), and export."""
    from annotate.generation import GenerateConfig
    from train.sft_config import SFT_FLAGS, SFTRunConfig

    p = sub.add_parser(
        "sft",
        help="demo LoRA SFT on the gold answers",
        description="LoRA SFT of a base variant on the train prompts' gold answers; registers the result.",
    )
    p.add_argument("--base", default="base", help="variant to fine-tune (default: base, the default model)")
    add_flags(p, SFTRunConfig, SFT_FLAGS)  # --epochs, --lr, --batch-size, --limit
    p.add_argument("--output-name", default="sft", help="name of the new variant (default sft)")

    p = sub.add_parser(
        "generate",
        help="generate response pairs with a variant",
        description="K responses per prompt, paired.",
    )
    p.add_argument(
        "--preset", choices=["default", "demo"], default="default", help="demo: K=4, two pairs per prompt"
    )
    add_flags(p, GenerateConfig, GENERATE_FLAGS)

    p = sub.add_parser(
        "judge",
        help="pre-judge pairs in both orders",
        description="Judge suggestions for every unjudged pair.",
    )
    p.add_argument(
        "--judge",
        default="auto",
        choices=["auto", "rule", "anthropic"],
        help="auto: anthropic if a key is set",
    )
    p.add_argument("--model", default=None, help="Anthropic model (default claude-opus-4-7)")
    p.add_argument("--rubric", metavar="FILE", help="rubric file (default: the demo triage rubric)")
    p.add_argument("--limit", type=int, help="at most this many pairs")
    p.add_argument(
        "--batch", action="store_true", help="use the Message Batches API (half price, asynchronous)"
    )
    p.add_argument("--poll-interval", type=float, default=30.0, help="seconds between batch status checks")
    p.add_argument("--accept", action="store_true", help="store position-consistent verdicts as judge labels")

    p = sub.add_parser(
        "train",
        help="DPO-train a LoRA adapter on the confirmed triples",
        description="Snapshot the triples, fill the reference log-prob cache, train in a worker, register the adapter.",
    )
    from train.cli import add_train_arguments

    add_train_arguments(p)

    p = sub.add_parser(
        "eval", help="automatic N-way eval on held-out prompts", description="Generate, score and tabulate."
    )
    from evaluate.eval_cli import add_eval_arguments

    add_eval_arguments(p)

    p = sub.add_parser("export", help="export the dataset (JSONL, Parquet, Hub) or an adapter")
    from annotate.data_cli import add_export_arguments

    add_export_arguments(p)  # its flags live with its body


def build_parser() -> CliParser:
    """The whole CLI; every command has --help."""
    parser = CliParser(prog="launch.py", description="PrefLab: preference annotation and DPO training.")
    parser.add_argument("--home", help="PrefLab home folder (default $PREFLAB_HOME, else ./preflab_home/)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    _add_device_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=CliParser)
    _add_serve(sub)
    _add_models(sub)
    _add_import(sub)
    _add_jobs(sub)
    p = sub.add_parser("stats", help="what the database holds")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _add_device_flags(parser) -> None:
    """Global flags: where every model PrefLab loads runs (generation, scoring, eval, arena, SFT, DPO)."""
    parser.add_argument(
        "--device",
        dest="model_device",
        default="auto",
        help="auto (CUDA, then MPS, then CPU; default), cpu, cuda, cuda:N or mps",
    )
    parser.add_argument(
        "--dtype",
        dest="model_dtype",
        default="auto",
        help="auto (default: bf16 on GPUs that support it, else fp16; the checkpoint's own on the CPU), "
        "float32, bfloat16, float16, float64",
    )
    parser.add_argument(
        "--device-map",
        choices=["auto", "none"],
        default="none",
        help="auto: spread a model over every GPU (and the CPU); chosen by itself when a model does not fit one GPU",
    )
    parser.add_argument(
        "--model-memory-gb",
        type=float,
        default=None,
        help="GB the loaded models may take before the least recently used is unloaded "
        "(default: 85%% of the GPU, half the RAM on the CPU)",
    )


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


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """True for hosts only this machine can reach."""
    import ipaddress

    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args) -> int:
    from common.access import parse_auth

    access = parse_auth(args.auth)
    ctx = _context(args)
    ctx.access = access
    from webui.app import launch_app

    if not access.enabled and not is_loopback(args.host):
        # Without --auth everyone who can reach the port is the admin: import, export, train, judge.
        message = (
            f"warning: serving on {args.host} without --auth: anyone who can reach port {args.port} "
            "can read, export and change everything; pass --auth USERS_FILE"
        )
        print(message, file=sys.stderr, flush=True)
    log.info("serving on http://%s:%s (home %s)", args.host, args.port, ctx.cfg.home)
    launch_app(ctx, host=args.host, port=args.port, auth=access.gradio_auth())
    return EXIT_OK


def cmd_models(args) -> int:
    if args.models_cmd in ("export-merged", "export-adapter"):
        return cmd_models_export(args)
    ctx = _context(args)
    if args.models_cmd in (None, "list"):
        rows = ctx.store.list_models()
        print(f"{'name':<22} {'kind':<9} {'base':<40} adapters / fingerprint")
        for m in rows:
            adapters = ", ".join(m.adapters) if m.adapters else "-"
            print(
                f"{m.name:<22} {m.kind:<9} {m.base or '-':<40} {adapters} / {m.fingerprint or 'not loaded yet'}"
            )
            if m.endpoint:
                from annotate.models_service import describe_variant

                print(f"{'':<22} {describe_variant(m).split('; ')[-1]}")
            elif m.kind != "imported":
                from annotate.models_service import where_it_runs

                print(f"{'':<22} runs on {where_it_runs(ctx, m)}")  # e.g. this server: cuda:0, bf16
        return EXIT_OK
    from annotate.models_service import describe_variant, register_variant, variant_spec

    row = register_variant(ctx, None, variant_spec(args))  # the CLI user owns the home: the admin
    print(f"registered {row.name} ({row.kind}): {describe_variant(row)}")
    return EXIT_OK


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
    from annotate.stats import format_stats, labelling_stats

    store = _context(args).store
    counts = store.counts()
    stats = labelling_stats(store.label_frame(), store.verdict_frame())
    if args.json:
        print(json.dumps({"counts": counts, **stats}, sort_keys=True))
    else:
        print(format_stats(counts, stats))
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
    from train.sft_service import run_demo_sft

    # The Train tab's Demo SFT form builds its settings with sft_run_config too.
    cfg = sft_run_config(**given(args, SFT_FLAGS))
    ctx = _context(args)
    bar = Bar("sft", "step")
    try:
        result = run_demo_sft(
            ctx, cfg, base=args.base, output_name=args.output_name, progress=lambda s, n, _logs: bar(s, n)
        )
    finally:
        bar.close()
    print(
        f"run #{result['run_id']}: {result['steps']} steps on {result['examples']} examples in {result['seconds']} s, "
        f"train loss {result['train_loss']:.3f}; registered variant `{result['variant']}`"
    )
    return EXIT_OK


def cmd_judge(args) -> int:
    from annotate.judging import accept_consistent, judge_pending
    from annotate.suggestions import Suggester
    from models.judge import load_rubric, make_judge

    rubric = load_rubric(args.rubric) if args.rubric else None
    judge = make_judge(args.judge, model=args.model, rubric=rubric)
    ctx = _context(args)
    suggester = Suggester(ctx.store, judge)
    bar = Bar("judging", "pair")
    try:
        report = judge_pending(
            suggester, limit=args.limit, batch=args.batch, progress=bar, poll_interval=args.poll_interval
        )
    finally:
        bar.close()
    if args.accept:
        report.accepted = accept_consistent(suggester)
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
    bar = Bar("generating", "resp")
    try:
        job_id, result = generate_here(ctx, cfg, progress=bar)  # the Generate pairs button's job, run here
    finally:
        bar.close()
    print(f"job #{job_id}: {GenerateResult.from_dict(result).summary()}")
    return EXIT_OK


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
