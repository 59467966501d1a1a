"""Claude as the pairwise judge: structured verdicts, PrefLab's own backoff, and Message Batches.

Here: the request for one screen order and the parsing of its answer. The client, its errors and the backoff
are in models/judge_backoff.py, Message Batches in models/judge_batches.py; `AnthropicJudge` inherits both.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable

from common.errors import JudgeError
from common.vocab import Decision
from models.judge_backoff import (
    MAX_RETRY_AFTER,
    RATE_LIMIT_STATUSES,
    Backoff,
    JudgeCallError,
    build_anthropic_client,
)
from models.judge_batches import MAX_BATCH_REQUESTS, MessageBatches
from models.judge_rubric import default_rubric, rubric_hash
from models.judge_types import (
    Messages,
    Order,
    PairVerdict,
    ScreenOrderJudge,
    Verdict,
    judge_label,
    one_line,
    render_prompt,
)

# Imported from here by models/judge.py and tests since before the client, backoff and batches moved out.
__all__ = [
    "DEFAULT_MODEL",
    "MAX_BATCH_REQUESTS",
    "MAX_RETRY_AFTER",
    "RATE_LIMIT_STATUSES",
    "SYSTEM_PREAMBLE",
    "VERDICT_SCHEMA",
    "AnthropicJudge",
    "JudgeCallError",
    "build_anthropic_client",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-opus-4-7"
# The SDK 2.10 structured-output format (`output_config={"format": {"type": "json_schema", ...}}`):
# the verdict arrives as one JSON text block. Rationale comes first so the model reasons before it decides.
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "description": "two to four sentences: why the winner is better"},
        "winner": {"type": "string", "enum": ["1", "2", "tie"]},
        "confidence": {"type": "number", "description": "0 to 1: how sure you are of the winner"},
    },
    "required": ["rationale", "winner", "confidence"],
    "additionalProperties": False,
}
SYSTEM_PREAMBLE = """\
You are an impartial judge comparing two responses to the same prompt, following the rubric below.
The responses are labelled Response 1 and Response 2; their order is random, so it must not
influence you, and neither must their length beyond what the rubric says. Where the rubric speaks
of answers A and B, it means Response 1 and Response 2. In the rationale, refer to them as
Response 1 and Response 2. Answer "tie" only when neither is better under the rubric.

<rubric>
"""
_RESPONSE_N = re.compile(r"\b(Response|response) ([12])\b")


class AnthropicJudge(ScreenOrderJudge, Backoff, MessageBatches):
    """Pairwise judge backed by Claude; asks both screen orders and only trusts consistent answers."""

    name = "anthropic"

    def __init__(
        self,
        client,
        *,
        model: str = DEFAULT_MODEL,
        rubric: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        max_tokens: int = 1024,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        if base_delay < 0 or max_delay < 0:
            raise ValueError(
                f"delays must be non-negative, got base_delay={base_delay!r}, max_delay={max_delay!r}"
            )
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens!r}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be within 0..1, got {jitter!r}")
        self.client = client
        self.model = model
        self.rubric = default_rubric() if rubric is None else rubric
        if not self.rubric.strip():
            raise JudgeError("the judge rubric is empty")
        self.rubric_hash = rubric_hash(self.rubric)
        self.label = judge_label(self.name, model)
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_tokens = max_tokens
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.system = SYSTEM_PREAMBLE + self.rubric.strip() + "\n</rubric>"

    # ---- one request -------------------------------------------------------------------------

    def params(self, prompt: Messages, first: str, second: str, gold: dict | None = None) -> dict:
        """Messages API parameters for one screen order (shared by direct calls and batches)."""
        parts = [f"<prompt>\n{render_prompt(prompt)}\n</prompt>"]
        reference = (
            gold if isinstance(gold, str) else (gold or {}).get("answer") or (gold or {}).get("severity")
        )
        if reference:
            parts.append(f"<reference_answer>\n{reference}\n</reference_answer>")
        parts.append(f"Response 1:\n<response_1>\n{first}\n</response_1>")
        parts.append(f"Response 2:\n<response_2>\n{second}\n</response_2>")
        parts.append("Which response is better under the rubric?")
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            # The rubric is identical across requests: cache it.
            "system": [{"type": "text", "text": self.system, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "\n\n".join(parts)}],
            "output_config": {"format": {"type": "json_schema", "schema": VERDICT_SCHEMA}},
        }

    def _verdict(self, prompt: Messages, first: str, second: str, gold, position_order: Order) -> Verdict:
        """Ask once with `first` shown as Response 1; JudgeError (one line) when no verdict comes back."""
        params = self.params(prompt, first, second, gold)
        message = self._call("Anthropic judge request", lambda: self.client.messages.create(**params))
        return self.verdict_from_message(message, position_order)

    def judge_pair(self, prompt: Messages, a: str, b: str, *, gold: dict | None = None) -> PairVerdict:
        """Ask A-first then B-first and combine; never raises, failures become status 'failed'."""
        verdicts: dict[str, Verdict] = {}
        try:
            for order, (first, second) in ((Order.AB, (a, b)), (Order.BA, (b, a))):
                # Stop at the first failure: the pair is failed anyway, and a second order would only
                # spend more time and tokens against the same outage.
                verdicts[order] = self.judge_order(prompt, first, second, gold=gold, position_order=order)
        except JudgeError as err:
            return PairVerdict.combine(
                verdicts.get(Order.AB),
                verdicts.get(Order.BA),
                error=str(err),
                rate_limited=getattr(err, "rate_limited", False),
                retry_after=getattr(err, "retry_after", None),
            )
        except Exception as err:  # a background job needs a verdict row, not a dead thread
            logger.exception("unexpected error while judging a pair")
            reason = self._scrub(f"unexpected {type(err).__name__}: {err}")
            return PairVerdict.combine(verdicts.get(Order.AB), verdicts.get(Order.BA), error=reason)
        return PairVerdict.combine(verdicts[Order.AB], verdicts[Order.BA])

    def applies(self, gold) -> bool:
        """Claude judges any pair, with or without a gold answer."""
        return True

    def verdict_from_message(self, message, position_order: Order, *, batch_id: str | None = None) -> Verdict:
        """Parse a Messages API response into a Verdict whose winner names a/b."""
        if message.stop_reason == "refusal":
            raise JudgeError("the model refused to judge this pair")
        if message.stop_reason == "max_tokens":
            raise JudgeError(f"the verdict was cut off at max_tokens={self.max_tokens}")
        text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
        try:
            data = json.loads(text)
            label = str(data["winner"]).strip().lower()
            confidence = min(1.0, max(0.0, float(data.get("confidence", 0.5))))
            rationale = str(data.get("rationale", "")).strip()
        except (ValueError, TypeError, KeyError, AttributeError):
            raise JudgeError(f"the judge returned no parseable verdict: {one_line(text, 120)!r}") from None
        shown = (Decision.A, Decision.B) if position_order == Order.AB else (Decision.B, Decision.A)
        # The keys are the answer VERDICT_SCHEMA asks the model for; the values are the decisions they mean.
        mapping = {"1": shown[0], "2": shown[1], "tie": Decision.TIE}
        if label not in mapping:
            raise JudgeError(f"the judge returned an unknown winner {label!r}")
        # The model speaks of screen positions; PrefLab stores and shows underlying A/B.
        rationale = _RESPONSE_N.sub(lambda m: f"{m.group(1)} {shown[int(m.group(2)) - 1].upper()}", rationale)
        usage = {k: v for k, v in message.usage.model_dump().items() if isinstance(v, int | float | str)}
        return Verdict(
            winner=mapping[label],
            rationale=rationale,
            confidence=confidence,
            position_order=position_order,
            usage=usage,
            judge=self.name,
            model=getattr(message, "model", None) or self.model,
            rubric_hash=self.rubric_hash,
            batch_id=batch_id,
        )
