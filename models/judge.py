"""PrefLab's pairwise judges: the public entry point (types, rubric loading, judge construction).

The pieces live in judge_types (Verdict, PairVerdict, BatchItem), judge_rubric, judge_rule (RuleJudge)
and judge_anthropic (AnthropicJudge, with its client and backoff in judge_backoff and Message Batches in
judge_batches); import them from here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Literal

from common.errors import JudgeError
from models.judge_anthropic import DEFAULT_MODEL, VERDICT_SCHEMA, AnthropicJudge, build_anthropic_client
from models.judge_rubric import DEFAULT_RUBRIC, RUBRIC_PATH, default_rubric, load_rubric, rubric_hash
from models.judge_rule import RuleJudge, score_answer
from models.judge_types import (
    UNSURE_HEADLINE,
    BatchItem,
    Messages,
    PairVerdict,
    Verdict,
    judge_label,
    render_prompt,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_RUBRIC",
    "RUBRIC_PATH",
    "UNSURE_HEADLINE",
    "VERDICT_SCHEMA",
    "AnthropicJudge",
    "BatchItem",
    "Messages",
    "PairVerdict",
    "RuleJudge",
    "Verdict",
    "build_anthropic_client",
    "default_rubric",
    "judge_label",
    "load_rubric",
    "make_judge",
    "render_prompt",
    "rubric_hash",
    "score_answer",
]

JudgeKind = Literal["rule", "anthropic", "auto"]


def make_judge(
    kind: JudgeKind,
    *,
    model: str | None = None,
    rubric: str | None = None,
    client=None,
    sleep: Callable[[float], None] = time.sleep,
) -> RuleJudge | AnthropicJudge:
    """Build a judge: 'auto' is Claude when ANTHROPIC_API_KEY is set (or a client is given), else rule-based."""
    if kind not in ("rule", "anthropic", "auto"):
        raise JudgeError(f"unknown judge {kind!r}: use rule, anthropic or auto")
    if kind == "auto":
        kind = (
            "anthropic" if client is not None or os.environ.get("ANTHROPIC_API_KEY", "").strip() else "rule"
        )
    if kind == "rule":
        return RuleJudge()
    return AnthropicJudge(
        client if client is not None else build_anthropic_client(),
        model=model or DEFAULT_MODEL,
        rubric=rubric,
        sleep=sleep,
    )
