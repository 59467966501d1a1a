"""A deterministic, rule-based judge for the incident-triage demo domain (used without an API key)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.vocab import Decision
from models.judge_rubric import rubric_hash
from models.judge_types import Messages, Order, PairVerdict, ScreenOrderJudge, Verdict

RULES = (
    "rule-based judge v2 (abstains without a gold severity): format (Severity/Summary/Next steps with 2-4 bullets, nothing else) 0.4, "
    "severity vs gold (exact 1, off by one 0.5 or 0.4 when under-rated, off by two 0.2) 0.4, "
    "one-sentence summary 0.1, brevity (full marks up to 80 words, none from 240) 0.1; "
    "weights renormalised without gold; tie within 0.02"
)
WEIGHTS = {"format": 0.4, "severity": 0.4, "summary": 0.1, "brevity": 0.1}
TIE_EPSILON = 0.02
BRIEF_WORDS, MAX_WORDS = 80, 240

_SEVERITY_LINE = re.compile(r"^Severity: SEV([1-4])$")
_SUMMARY_LINE = re.compile(r"^Summary: (\S.*)$")
_BULLET = re.compile(r"^- \S")
_SEV_ANYWHERE = re.compile(r"\bSEV\s*-?\s*([1-4])\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


@dataclass
class Score:
    """One answer's per-criterion scores (each 0..1) and the notes that explain them."""

    total: float
    parts: dict[str, float]
    notes: list[str]


def gold_severity(gold: dict | str | None) -> int | None:
    """The gold severity level (1-4) from {'severity': 'SEV2'} or, failing that, the gold answer text."""
    if not gold:
        return None
    if isinstance(gold, str):
        gold = {"answer": gold}
    # "gold_severity" is the raw field name in data/incidents.jsonl.
    raw = gold.get("severity") or gold.get("gold_severity")
    if isinstance(raw, int) and 1 <= raw <= 4:
        return raw
    for text in (raw, gold.get("answer")):
        if isinstance(text, str) and (m := _SEV_ANYWHERE.search(text)):
            return int(m.group(1))
    return None


def _answer_severity(lines: list[str]) -> int | None:
    """The answer's severity: its Severity line, else a single unambiguous SEVn mention anywhere."""
    for line in lines:
        if m := _SEVERITY_LINE.match(line):
            return int(m.group(1))
    found = {int(m.group(1)) for line in lines for m in _SEV_ANYWHERE.finditer(line)}
    # Hedging ("SEV1 or SEV2") is no answer at all.
    return found.pop() if len(found) == 1 else None


def _format_score(lines: list[str]) -> tuple[float, list[str]]:
    """Five checks of the exact Severity / Summary / Next steps / 2-4 bullets structure."""
    problems = []
    if not any(_SEVERITY_LINE.match(x) for x in lines):
        problems.append("no 'Severity: SEVn' line")
    if not any(_SUMMARY_LINE.match(x) for x in lines):
        problems.append("no 'Summary:' line")
    if "Next steps:" not in lines:
        problems.append("no 'Next steps:' line")
    after = lines[lines.index("Next steps:") + 1 :] if "Next steps:" in lines else []
    n_bullets = sum(1 for x in after if _BULLET.match(x))
    if not 2 <= n_bullets <= 4:
        problems.append(f"{n_bullets} next-step bullets instead of 2-4")
    exact = (
        len(lines) >= 5
        and _SEVERITY_LINE.match(lines[0])
        and _SUMMARY_LINE.match(lines[1])
        and lines[2] == "Next steps:"
        and all(_BULLET.match(x) for x in lines[3:])
    )
    if not exact:
        problems.append("extra or out-of-order text")
    return (5 - len(problems)) / 5, problems


def _severity_score(level: int | None, gold: int) -> tuple[float, str]:
    """Exact match 1, off by one 0.5 (0.4 when under-rated), off by two 0.2, else 0."""
    if level is None:
        return 0.0, f"no clear severity (gold SEV{gold})"
    diff = level - gold
    if diff == 0:
        return 1.0, f"severity SEV{level} matches gold"
    # A larger SEV number is a lower severity: under-rating is the worse mistake.
    score = {1: 0.5, 2: 0.2}.get(abs(diff), 0.0) - (0.1 if diff == 1 else 0.0)
    direction = "below" if diff > 0 else "above"
    return score, f"severity SEV{level} is {abs(diff)} level(s) {direction} gold SEV{gold}"


def score_answer(text: str, gold: dict | None = None) -> Score:
    """Score one answer on format, severity vs gold (when given), one-sentence summary and brevity."""
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    parts, notes = {}, []
    parts["format"], problems = _format_score(lines)
    notes.append(f"format {round(parts['format'] * 5)}/5" + (f" ({'; '.join(problems)})" if problems else ""))
    level = gold_severity(gold)
    if level is not None:
        parts["severity"], note = _severity_score(_answer_severity(lines), level)
        notes.append(note)
    summary = next((m.group(1) for x in lines if (m := _SUMMARY_LINE.match(x))), None)
    one_sentence = summary is not None and len(_SENTENCE_END.findall(summary)) == 1 and summary[-1] in ".!?"
    parts["summary"] = 1.0 if one_sentence else 0.0
    notes.append("summary is one sentence" if one_sentence else "summary is not one sentence")
    words = len(text.split())
    parts["brevity"] = min(1.0, max(0.0, (MAX_WORDS - words) / (MAX_WORDS - BRIEF_WORDS)))
    notes.append(f"{words} words")
    weight = sum(WEIGHTS[k] for k in parts)
    total = sum(WEIGHTS[k] * v for k, v in parts.items()) / weight
    return Score(total=total, parts=parts, notes=notes)


class RuleJudge(ScreenOrderJudge):
    """Deterministic demo-domain judge; scores each answer on its own, so it is order-consistent."""

    name = "rule"
    label = "rule-based judge"
    model = None
    rubric_hash = rubric_hash(RULES)
    abstain_reason = (
        "the rule-based judge only judges incident-triage answers against a gold severity, "
        "and this prompt has none."
    )

    def applies(self, gold) -> bool:
        """Only pairs whose prompt has a gold severity it understands: elsewhere its scores are noise."""
        return gold_severity(gold) is not None

    def _verdict(self, prompt: Messages, first: str, second: str, gold, position_order: Order) -> Verdict:
        """Score both answers against the gold severity; the better total wins."""
        a, b = (first, second) if position_order == Order.AB else (second, first)
        sa, sb = score_answer(a, gold), score_answer(b, gold)
        gap = abs(sa.total - sb.total)
        if gap <= TIE_EPSILON:
            winner, confidence, outcome = Decision.TIE, 0.5, "A and B score about the same: tie."
        else:
            winner = Decision.A if sa.total > sb.total else Decision.B
            confidence = round(0.5 + 0.5 * min(1.0, gap / 0.5), 2)
            outcome = f"{winner.upper()} is better."
        rationale = (
            "Rule-based judge (no LLM; checks format, severity against the gold answer, "
            "a one-sentence summary and brevity). "
            f"A: {', '.join(sa.notes)} → {sa.total:.2f}. "
            f"B: {', '.join(sb.notes)} → {sb.total:.2f}. {outcome}"
        )
        return Verdict(
            winner=winner,
            rationale=rationale,
            confidence=confidence,
            position_order=position_order,
            usage={"input_tokens": 0, "output_tokens": 0},
            judge=self.name,
            model=None,
            rubric_hash=self.rubric_hash,
        )

    def judge_pair(self, prompt: Messages, a: str, b: str, *, gold: dict | None = None) -> PairVerdict:
        """Judge both orders, like the LLM judge, and combine them."""
        ab = self.judge_order(prompt, a, b, gold=gold, position_order=Order.AB)
        ba = self.judge_order(prompt, b, a, gold=gold, position_order=Order.BA)
        return PairVerdict.combine(ab, ba)
