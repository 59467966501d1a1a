"""`launch.py eval`: its flags and the command that prints the N-way table and writes the chart."""

from __future__ import annotations

import logging
from pathlib import Path

from common.errors import UserInputError
from common.flags import Flag, add_flags
from common.progress import Bar
from common.vocab import PROMPT_SETS, Split
from evaluate.responses import ResponseParams

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 30


# The sampling flags: help and defaults are ResponseParams' fields (common.flags), the arena's settings too.
SAMPLING_FLAGS = (Flag("temperature"), Flag("top_p"), Flag("max_new_tokens"), Flag("seed"))


def add_eval_arguments(parser) -> None:
    """Add the eval flags to an argparse (sub)parser."""
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated variant names in column order; the Δ column compares the last with sft "
        "(default: base,sft and the newest sft+dpo@RUN that exist; a bare sft+dpo means the newest)",
    )
    parser.add_argument(
        "--prompts",
        default=Split.HELDOUT.value,
        choices=list(PROMPT_SETS),
        help="prompt split (default heldout)",
    )
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"prompts to evaluate (default {DEFAULT_LIMIT})"
    )
    parser.add_argument(
        "--judge",
        default="auto",
        choices=["auto", "rule", "anthropic"],
        help="who scores faithfulness and preference: auto = Claude when ANTHROPIC_API_KEY is set, else rule-based",
    )
    add_flags(parser, ResponseParams, SAMPLING_FLAGS)
    parser.add_argument(
        "--output-dir", default=None, help="folder for eval_<id>.md and eval_<id>.png (default HOME/evals)"
    )


def cmd_eval(args, ctx) -> int:
    """Run the eval, print the markdown table, write the markdown and the chart; 0 on success."""
    from common.limits import MAX_ITEMS
    from evaluate.eval_report import write_report
    from evaluate.eval_service import pick_judge, run_eval

    if args.limit is not None and args.limit < 1:
        raise UserInputError(f"--limit must be at least 1; got {args.limit}")
    if args.limit is not None and args.limit > MAX_ITEMS:
        raise UserInputError(f"--limit must be at most {MAX_ITEMS}; got {args.limit}")
    variants = [v.strip() for v in (args.variants or "").split(",") if v.strip()]
    params = ResponseParams(
        temperature=args.temperature,
        top_p=getattr(args, "top_p", ResponseParams.top_p),
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    judge = pick_judge(ctx, args.judge)
    bar = Bar("evaluating")
    try:
        result = run_eval(
            ctx, variants, prompt_set=args.prompts, limit=args.limit, params=params, judge=judge, progress=bar
        )
    finally:
        bar.close()
    output_dir = Path(args.output_dir) if args.output_dir else ctx.cfg.paths.evals
    md, png = write_report(result, output_dir)
    print(result.markdown())
    print(f"\nwrote {md} and {png}")
    return 0
