"""The command-line parser: every command and flag of `launch.py` (their handlers live there).

Where a command's settings live in a dataclass (sft, train, generate, eval sampling, export filters, import caps,
models add), its flags are generated from the fields (`common.flags`): one source for help, default and choices.
Feature modules are imported inside the `_add_*` functions, so this module imports nothing but `common` at load.
"""

from __future__ import annotations

import argparse

from common.errors import UserInputError
from common.flags import Flag, HelpFormatter, add_flags

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
