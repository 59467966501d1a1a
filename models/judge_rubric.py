"""Judging rubrics: the demo-domain default, loading one from a file, and its short hash."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from errors import JudgeError

# Written by data/make_incidents.py; preferred over the constant below so the judge and the data agree.
RUBRIC_PATH = Path(__file__).resolve().parents[1] / "data" / "severity_rubric.md"

DEFAULT_RUBRIC = """\
# Incident triage: judging rubric

You compare two answers to the same incident report. The task given to the model was to triage the
report: give the severity (SEV1-SEV4), a one-sentence summary and next steps.

Prefer the answer that is better on the criteria below, in this order of importance.

## 1. Format conformance

The expected answer is exactly:

```
Severity: SEV<1-4>
Summary: <one sentence ending with a period>
Next steps:
- <bullet>
- <bullet>
```

with 2 to 4 bullets and nothing else (no preamble, no headings, no closing remarks). An answer that
breaks the format loses to one that keeps it, unless the conforming answer is badly wrong on severity.

## 2. Severity correctness

Rate the report yourself with the scale below, then prefer the answer whose severity matches. If
neither matches, prefer the one that is off by fewer levels. Under-rating a real SEV1 is worse than
over-rating by one level.

- SEV1 (critical): a customer-facing critical path (login, checkout, payments, the public API) fully
  down or failing for most users; confirmed loss or corruption of customer or financial data; an
  active security breach; revenue has stopped.
- SEV2 (major): a partial outage or major degradation for a significant subset of users (about 5% or
  more, a whole region or platform, a key feature); severe latency on a critical path; an exploitable
  vulnerability with no evidence of exploitation; wrong data shown to many customers; a problem that
  becomes SEV1 within hours unless someone acts.
- SEV3 (minor): minor degradation or a problem limited to a few customers; a non-critical feature or
  internal tool broken, especially with a workaround; an imminent risk with no user impact yet.
- SEV4 (low): no user impact: cosmetic issues, notices, false-positive or self-resolved pages,
  problems confined to staging, test or CI.

Pick the highest level any stated fact justifies; already-mitigated incidents are rated by the
impact they had.

## 3. Summary faithfulness

The summary states what is broken, where and the impact, using only facts from the report. Penalize
invented numbers, causes or services, and summaries that contradict the report.

## 4. Concrete next steps

Good bullets are specific and actionable and fit the report's facts, including what was already
tried. Generic advice ("investigate the issue", "monitor the situation") is worse.

## 5. Brevity

Between two otherwise equal answers, prefer the shorter, plainer one. Length is never a merit.
"""


def rubric_hash(text: str) -> str:
    """Short sha256 of a rubric, stored with each verdict so changed rubrics are told apart."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def default_rubric() -> str:
    """The demo-domain rubric: data/severity_rubric.md when present and non-empty, else the built-in text."""
    try:
        text = RUBRIC_PATH.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return DEFAULT_RUBRIC
    return text + "\n" if text else DEFAULT_RUBRIC


def load_rubric(path: str | os.PathLike | None) -> str:
    """Read a rubric file (the default rubric when path is None); JudgeError naming the path otherwise."""
    if path is None:
        return default_rubric()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise JudgeError(f"cannot read rubric file {path}: {reason}") from None
    if not text.strip():
        raise JudgeError(f"rubric file {path} is empty")
    return text
