"""Judge result types shared by every judge: one verdict per order, the pair verdict, batch items."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from common.text import one_line as common_one_line
from common.vocab import Decision, Order, plain, values

Messages = list[dict]
Winner = Literal["a", "b", "tie"]
PairStatus = Literal["ok", "unsure", "failed", "abstained"]

# A judge picks a response or a tie; it never says both_bad (which the stored JUDGE_WINNERS also allow).
WINNERS = plain(Decision.A, Decision.B, Decision.TIE)
ORDERS = values(Order)
UNSURE_HEADLINE = "judge unsure (position-inconsistent)"
# The Message Batches API allows custom_id ^[a-zA-Z0-9_-]{1,64}$; "-ab"/"-ba" are appended to the item's id.
ITEM_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,61}")
_FAMILY_RE = re.compile(r"^claude-(opus|sonnet|haiku)\b", re.IGNORECASE)


def one_line(text: str, limit: int = 300) -> str:
    """common.text.one_line for judges: 300 characters at most, and an ellipsis where the text was cut."""
    flat = common_one_line(text, limit + 1)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def judge_label(judge: str, model: str | None) -> str:
    """How the UI names a judge, e.g. 'Claude Opus (claude-opus-4-7)' or 'rule-based judge'."""
    if judge == "rule":
        return "rule-based judge"
    if judge == "anthropic" and model:
        family = _FAMILY_RE.match(model)
        return f"Claude {family.group(1).title()} ({model})" if family else f"Claude ({model})"
    return f"{judge} ({model})" if model else judge


def render_prompt(prompt: Messages | str) -> str:
    """Chat messages as plain text for a judge: a lone user turn as is, else 'role: content' blocks."""
    if isinstance(prompt, str):
        return prompt
    turns = [(str(m.get("role", "user")), _content_text(m.get("content", ""))) for m in prompt]
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n\n".join(f"{role}: {text}" for role, text in turns)


def _content_text(content) -> str:
    """Text of a message's content, which may be a string or a list of typed blocks."""
    if isinstance(content, str):
        return content
    parts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return "\n".join(parts)


@dataclass
class Verdict:
    """One judge answer for one screen order; winner always names the underlying responses a/b."""

    winner: Winner = field(metadata={"help": "'a', 'b' or 'tie', already mapped back from screen position"})
    rationale: str = field(metadata={"help": "why, in the judge's words, referring to A and B"})
    confidence: float = field(metadata={"help": "0..1, as reported by the judge"})
    position_order: Order = field(metadata={"help": "'ab' when A was shown first, 'ba' when B was"})
    usage: dict = field(metadata={"help": "token usage: input_tokens, output_tokens, ..."})
    judge: str = field(metadata={"help": "judge kind: 'anthropic' or 'rule'"})
    model: str | None = field(metadata={"help": "model id, None for the rule-based judge"})
    rubric_hash: str = field(metadata={"help": "short sha256 of the rubric text"})
    batch_id: str | None = field(default=None, metadata={"help": "Message Batch id when judged in a batch"})

    def __post_init__(self):
        if self.winner not in WINNERS:
            raise ValueError(f"Verdict.winner must be one of {WINNERS}, got {self.winner!r}")
        if self.position_order not in ORDERS:
            raise ValueError(f"Verdict.position_order must be one of {ORDERS}, got {self.position_order!r}")
        if not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"Verdict.confidence must be within 0..1, got {self.confidence!r}")
        self.confidence = float(self.confidence)


@dataclass
class PairVerdict:
    """Both orders of one pair combined: a suggestion only when the judge is position-consistent.

    'abstained': the judge does not apply to this pair (nothing is asked, stored or suggested).
    """

    ab: Verdict | None
    ba: Verdict | None
    status: PairStatus
    suggestion: Winner | None
    rationale: str
    error: str | None = None
    # A failure the API asked to slow down for (HTTP 429/529): pause judging, for retry_after seconds if given.
    rate_limited: bool = False
    retry_after: float | None = None

    @classmethod
    def combine(
        cls,
        ab: Verdict | None,
        ba: Verdict | None,
        *,
        error: str | None = None,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> PairVerdict:
        """Combine the A-first and B-first verdicts; a missing one makes the pair 'failed'."""
        for verdict, order in ((ab, Order.AB), (ba, Order.BA)):
            if verdict is not None and verdict.position_order != order:
                raise ValueError(
                    f"PairVerdict.combine: {order} slot got a {verdict.position_order!r} verdict"
                )
        if ab is None or ba is None:
            missing = " and ".join(o for v, o in ((ab, Order.AB), (ba, Order.BA)) if v is None)
            reason = one_line(error) if error else f"no verdict for order {missing}"
            return cls(ab, ba, "failed", None, "", reason, rate_limited, retry_after)
        if ab.winner == ba.winner:
            return cls(ab, ba, "ok", ab.winner, ab.rationale, None)
        both = f"Asked with A shown first: {ab.rationale}\n\nAsked with B shown first: {ba.rationale}"
        return cls(ab, ba, "unsure", None, both, None)

    @classmethod
    def abstain(cls, reason: str) -> PairVerdict:
        """The judge does not apply to this pair: no verdict and no suggestion, only why."""
        return cls(None, None, "abstained", None, "", one_line(reason))

    @property
    def confidence(self) -> float | None:
        """Mean confidence of the two orders, None unless both exist."""
        if self.ab is None or self.ba is None:
            return None
        return (self.ab.confidence + self.ba.confidence) / 2

    def display(self) -> tuple[str, str]:
        """(headline, rationale) strings for the Annotate tab."""
        if self.status == "abstained":
            return f"no judge applies: {self.error}", ""
        if self.status == "failed":
            return f"judge failed: {one_line(self.error or 'unknown error')}", ""
        if self.status == "unsure":
            return UNSURE_HEADLINE, self.rationale
        label = judge_label(self.ab.judge, self.ab.model)
        choice = "a tie" if self.suggestion == Decision.TIE else self.suggestion.upper()
        return f"{label} suggests {choice} · confidence {round(self.confidence, 2):g}", self.rationale


class ScreenOrderJudge:
    """What both judges share: `judge_order` checks the screen order, then asks the judge's own `_verdict`."""

    def judge_order(
        self,
        prompt: Messages,
        first: str,
        second: str,
        *,
        gold: dict | None = None,
        position_order: Order = Order.AB,
    ) -> Verdict:
        """Judge once with `first` shown as Response 1; the verdict's winner names the underlying a/b."""
        if position_order not in ORDERS:
            raise ValueError(f"position_order must be 'ab' or 'ba', got {position_order!r}")
        return self._verdict(prompt, first, second, gold, position_order)

    def _verdict(self, prompt: Messages, first: str, second: str, gold, position_order: Order) -> Verdict:
        raise NotImplementedError


@dataclass
class BatchItem:
    """One pair to judge in a Message Batch; custom_id comes back as the key of the results."""

    custom_id: str  # letters, digits, '_' or '-', at most 61 characters
    prompt: Messages  # the chat messages both responses answer
    a: str  # response A
    b: str  # response B
    gold: dict | None = None  # optional gold answer, e.g. {'severity': 'SEV2'}

    def __post_init__(self):
        # Both derived ids ("<id>-ab", "<id>-ba") must satisfy the API's pattern, hence 61 characters.
        if not isinstance(self.custom_id, str) or not ITEM_ID_RE.fullmatch(self.custom_id):
            raise ValueError(
                f"BatchItem.custom_id must be 1-61 letters, digits, '_' or '-', got {self.custom_id!r}"
            )
