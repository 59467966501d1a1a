"""Eval scorers: demo-domain heuristics, ROUGE-L vs gold, judge faithfulness 1–5 and judge preference vs SFT.

A scorer turns one prompt's outputs (variant -> text) into one number per variant. Its `name` is the
table row and the `eval_scores.scorer` value, so every stored number says which scorer produced it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from rouge_score import rouge_scorer

from common.errors import JudgeError
from common.vocab import Decision
from models.judge import judge_label, render_prompt, score_answer
from models.judge_rule import gold_severity

log = logging.getLogger(__name__)

_ROUGE = rouge_scorer.RougeScorer(["rougeL"])  # its default tokenizer, no stemmer: as the stored scores

_SUMMARY = re.compile(r"^\s*Summary:\s*(.*)$", re.MULTILINE)
_NUMBER = re.compile(r"(?<![\w.:,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:[.:]\d+)*")
# Service-like names (inventory-sync), CamelCase products (ShipRoute) and acronyms (EU, AEST, API).
_HYPHENATED = re.compile(r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b", re.IGNORECASE)
_CAMEL = re.compile(r"\b[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*\b")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")
_NOT_FACTS = {"SEV"}

RULE_FAITHFULNESS = (
    "rule-based proxy, no LLM: the checkable facts of the summary (numbers, times, service names, acronyms) "
    "are looked up in the report (whole words, hyphens as spaces, a compound found whole or part by part); "
    "score = 1 + 3 × share found + 1 if any is found; 2.5 when the summary has nothing checkable; "
    "1 when the answer is empty"
)
FAITHFULNESS_RUBRIC = """\
You rate how faithful an answer to an incident report is to that report, on a 1-5 scale.
Faithful means every fact the answer states (services, numbers, times, regions, causes, impact) is
stated in or directly implied by the report. Judge faithfulness only: not format, severity or style.

5: every stated fact is supported by the report.
4: one minor detail is unsupported or imprecise; nothing contradicts the report.
3: a material detail is invented or imprecise, or the answer is too vague to check.
2: several invented facts, or one that contradicts the report.
1: mostly invented or contradicting the report, or no answer at all.
"""
FAITHFULNESS_SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "description": "one or two sentences naming unsupported facts"},
        "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
    },
    "required": ["rationale", "score"],
    "additionalProperties": False,
}


# ---- pure scoring functions -----------------------------------------------------------------------


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 by Google's `rouge-score` (lowercase letter-and-digit tokens, no stemming); 0 if a side is empty."""
    return _ROUGE.score(reference, candidate)["rougeL"].fmeasure


def format_conformance(text: str) -> float:
    """Share of the rule judge's five format checks passed (Severity / Summary / Next steps / 2-4 bullets)."""
    return score_answer(text).parts["format"]


def severity_match(text: str, gold) -> float | None:
    """1 when the answer's severity equals the gold severity, else 0; None without a gold severity."""
    if gold_severity(gold) is None:
        return None
    return 1.0 if score_answer(text, gold).parts["severity"] == 1.0 else 0.0


def word_count(text: str) -> float:
    """Whitespace-separated words."""
    return float(len(text.split()))


def gold_answer(gold) -> str | None:
    """The gold answer text from {'answer': ...} or a plain string; None when there is none."""
    if isinstance(gold, str):
        return gold or None
    if isinstance(gold, dict) and isinstance(gold.get("answer"), str):
        return gold["answer"] or None
    return None


def summary_text(answer: str) -> str:
    """The text after 'Summary:' when the answer has that line, else the whole answer."""
    m = _SUMMARY.search(answer)
    return (m.group(1) if m else answer).strip()


def checkable_facts(text: str) -> list[str]:
    """Numbers, times, service names and acronyms a reader could look up in the report, in order, once each."""
    found = [
        *(n.replace(",", "") for n in _NUMBER.findall(text)),
        *_HYPHENATED.findall(text),
        *_CAMEL.findall(text),
        *(a for a in _ACRONYM.findall(text) if a not in _NOT_FACTS),
    ]
    return list(dict.fromkeys(found))


def _has_words(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def rule_faithfulness(report: str, answer: str) -> float:
    """Rule-based faithfulness proxy on 1–5 (see RULE_FAITHFULNESS): are the summary's facts in the report?"""
    summary = summary_text(answer)
    if not summary:
        return 1.0
    facts = checkable_facts(summary)
    if not facts:
        return 2.5
    plain = report.replace(",", "")
    # Hyphens as spaces on both sides: 'secret-scanner' is the report's 'secret scanner'.
    words = re.sub(r"[-_/]", " ", report.lower())

    def in_report(fact: str) -> bool:
        if fact[0].isdigit():
            # '05:49' is found in '2025-03-31T05:49:00', but '15' not in '1.5' or '150', nor '49' in '05:49'.
            return re.search(rf"(?<![\d.:]){re.escape(fact)}(?!\d|\.\d)", plain) is not None
        # Whole words only ('US' is not inside 'customers'); a compound is found whole or part by part.
        phrase = re.sub(r"[-_/]", " ", fact.lower())
        return _has_words(words, phrase) or all(_has_words(words, part) for part in phrase.split())

    found = sum(1 for f in facts if in_report(f))
    return 1.0 + 3.0 * found / len(facts) + (1.0 if found else 0.0)


def claude_faithfulness(judge, prompt, answer: str) -> float:
    """Ask the Anthropic judge for a 1–5 faithfulness score (structured output); JudgeError when none comes back."""
    params = {
        "model": judge.model,
        "max_tokens": judge.max_tokens,
        "system": [{"type": "text", "text": FAITHFULNESS_RUBRIC, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": f"<report>\n{render_prompt(prompt)}\n</report>\n\n<answer>\n{answer}\n</answer>\n\n"
                "How faithful is the answer to the report (1-5)?",
            }
        ],
        "output_config": {"format": {"type": "json_schema", "schema": FAITHFULNESS_SCHEMA}},
    }
    # The judge's own call wrapper gives the same backoff and key scrubbing as its pairwise requests.
    message = judge._call("Anthropic faithfulness request", lambda: judge.client.messages.create(**params))
    text = "".join(b.text for b in message.content if getattr(b, "type", None) == "text")
    try:
        score = int(json.loads(text)["score"])
    except (ValueError, TypeError, KeyError):
        raise JudgeError(f"the judge returned no parseable faithfulness score: {text[:120]!r}") from None
    if not 1 <= score <= 5:
        raise JudgeError(f"the judge returned a faithfulness score outside 1-5: {score}")
    return float(score)


def judge_name(judge) -> str:
    """How a row names its judge, e.g. 'rule-based judge' or 'Claude Opus (claude-opus-4-7)'."""
    return getattr(judge, "label", None) or judge_label(judge.name, getattr(judge, "model", None))


# ---- scorers --------------------------------------------------------------------------------------


@dataclass
class Item:
    """One prompt to score: its messages, gold and every variant's output."""

    prompt_id: int
    messages: list[dict]
    gold: object
    outputs: dict[str, str]


@dataclass
class Scorer:
    """A row of the eval table: a name naming the scorer, its kind, and how to print its numbers."""

    name: str
    kind: str  # heuristic, reference or judge
    decimals: int = 2
    failures: int = field(default=0, repr=False)

    def score(self, item: Item, reference: str) -> dict[str, float | None]:
        """variant -> score for one prompt (None where the scorer has no answer)."""
        return {v: self.one(item, text) for v, text in item.outputs.items()}

    def one(self, item: Item, text: str) -> float | None:  # pragma: no cover - overridden
        raise NotImplementedError

    uses_judge: bool = field(default=False, repr=False)  # scored by the eval judge itself (circularity)

    def describe(self) -> dict:
        """What the eval run records about this scorer."""
        return {key: getattr(self, key) for key in ("name", "kind", "decimals", "uses_judge")}


class TextScorer(Scorer):
    """A scorer whose number is one function of the prompt's item and an output (the heuristics, ROUGE-L)."""

    def __init__(self, name: str, kind: str, fn: Callable[[Item, str], float | None], *, decimals: int = 2):
        super().__init__(name, kind, decimals)
        self.fn = fn

    def one(self, item, text):
        return self.fn(item, text)


def rouge_vs_gold(item: Item, text: str) -> float | None:
    """ROUGE-L F1 against the gold answer; None without one. Reference-based, no judge involved."""
    gold = gold_answer(item.gold)
    return None if gold is None else rouge_l(text, gold)


class FaithfulnessScorer(Scorer):
    """Faithfulness 1–5: Claude with a rubric, or the rule-based proxy for the rule judge."""

    def __init__(self, judge):
        self.judge = judge
        self.llm = getattr(judge, "name", None) == "anthropic"
        label = judge_name(judge) if self.llm else "rule-based proxy, no LLM"
        # The proxy shares nothing with the rule judge's preference rules, so only Claude's scores can be circular.
        super().__init__(f"faithfulness 1–5 ({label})", "judge", uses_judge=self.llm)

    def one(self, item, text):
        if not self.llm:
            return rule_faithfulness(render_prompt(item.messages), text)
        try:
            return claude_faithfulness(self.judge, item.messages, text)
        except JudgeError as err:
            self.failures += 1
            log.warning("faithfulness of prompt %s not scored: %s", item.prompt_id, err)
            return None

    def describe(self):
        rule = FAITHFULNESS_RUBRIC if self.llm else RULE_FAITHFULNESS
        return {**super().describe(), "rubric": rule}


class PreferenceScorer(Scorer):
    """Judge preference of each variant over the reference, both orders: win 1, loss 0, tie or inconsistent 0.5."""

    def __init__(self, judge, reference: str):
        self.judge = judge
        self.abstained = 0  # prompts the judge does not apply to (the rule judge without a gold severity)
        super().__init__(
            f"preference vs {reference} ({judge_name(judge)}, both orders)", "judge", uses_judge=True
        )

    def score(self, item, reference):
        ref = item.outputs[reference]
        applies = getattr(self.judge, "applies", None)
        if applies is not None and not applies(item.gold):
            # Its scores would be noise here: the row stays empty rather than read like a result.
            self.abstained += 1
            return {variant: None for variant in item.outputs}
        out: dict[str, float | None] = {}
        for variant, text in item.outputs.items():
            # The reference against itself, or an identical text, is a tie by definition: no judge call.
            if variant == reference or text == ref:
                out[variant] = 0.5
                continue
            verdict = self.judge.judge_pair(item.messages, text, ref, gold=item.gold)
            if verdict.status == "failed":
                self.failures += 1
                log.warning(
                    "preference of %s on prompt %s not judged: %s", variant, item.prompt_id, verdict.error
                )
                out[variant] = None
            elif verdict.status == "unsure":
                out[variant] = 0.5
            else:
                out[variant] = {Decision.A: 1.0, Decision.B: 0.0}.get(verdict.suggestion, 0.5)
        return out

    def describe(self):
        return {**super().describe(), "judge": self.judge.name, "model": getattr(self.judge, "model", None)}


def default_scorers(judge, reference: str) -> list[Scorer]:
    """The eval's rows, in table order."""
    return [
        TextScorer(
            "format conformance (heuristic)", "heuristic", lambda _item, text: format_conformance(text)
        ),
        TextScorer(
            "severity match vs gold (heuristic)",
            "heuristic",
            lambda item, text: severity_match(text, item.gold),
        ),
        # Neither better nor worse: shown because judges and people reward length.
        TextScorer(
            "length in words (heuristic)", "heuristic", lambda _item, text: word_count(text), decimals=1
        ),
        TextScorer("ROUGE-L vs gold (reference)", "reference", rouge_vs_gold),
        FaithfulnessScorer(judge),
        PreferenceScorer(judge, reference),
    ]
