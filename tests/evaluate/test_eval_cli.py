"""`launch.py eval` as the CLI runs it: flags parsed by argparse, the table printed, files written."""

from __future__ import annotations

import argparse
import re

import pytest

from common.errors import UserInputError
from evaluate.eval_cli import add_eval_arguments, cmd_eval
from tests.evaluate import test_eval_support as support

# The shared fixtures, made visible to pytest in this module.
eval_tokenizer_dir = support.eval_tokenizer_dir
eval_store = support.eval_store
eval_ctx = support.eval_ctx


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="launch.py eval")
    add_eval_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_match_the_cli_contract():
    args = _args()
    assert (args.variants, args.prompts, args.limit, args.judge) == (None, "heldout", 30, "auto")


def test_cmd_eval_prints_the_table_and_writes_the_chart(eval_ctx, tmp_path, capsys):
    out = tmp_path / "report"
    args = _args(
        "--limit", "3", "--max-new-tokens", "8", "--judge", "rule", "--seed", "7", "--output-dir", str(out)
    )
    assert cmd_eval(args, eval_ctx) == 0
    printed = capsys.readouterr().out
    print(printed)
    assert "| Metric (scorer) | base | sft | sft+dpo@1 | Δ sft+dpo@1 over sft |" in printed
    assert "| preference vs sft (rule-based judge, both orders) |" in printed
    assert "3 heldout prompts" in printed and "max_new_tokens=8, seed=7" in printed
    run_id = eval_ctx.store.list_eval_runs()[0].id
    assert (out / f"eval_{run_id}.png").stat().st_size > 0
    assert (out / f"eval_{run_id}.md").read_text().strip() in printed


def test_cmd_eval_default_output_is_under_home_and_variants_are_a_comma_list(eval_ctx, capsys):
    args = _args("--variants", "sft, sft+dpo", "--limit", "2", "--max-new-tokens", "8", "--judge", "rule")
    assert cmd_eval(args, eval_ctx) == 0
    printed = capsys.readouterr().out
    # A bare sft+dpo means the newest sft+dpo@RUN.
    assert "| Metric (scorer) | sft | sft+dpo@1 | Δ sft+dpo@1 over sft |" in printed
    assert list((eval_ctx.cfg.home / "evals").glob("eval_*.png"))


def test_cmd_eval_user_mistakes_are_one_line_errors(eval_ctx):
    with pytest.raises(UserInputError, match=re.escape("no variant named 'sft+ppo'")):
        cmd_eval(_args("--variants", "sft,sft+ppo"), eval_ctx)
    with pytest.raises(UserInputError, match="--limit must be at least 1"):
        cmd_eval(_args("--limit", "0"), eval_ctx)
    with pytest.raises(UserInputError, match="bad response params"):
        cmd_eval(_args("--temperature", "-1"), eval_ctx)
