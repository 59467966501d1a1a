"""Judging rubrics: the demo-domain default, loading one from a file, and its short hash."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from common.errors import JudgeError

# data/make_incidents.py writes DEFAULT_RUBRIC there; a copy edited in place is what the judge uses.
RUBRIC_PATH = Path(__file__).resolve().parents[1] / "data" / "severity_rubric.md"

# The one copy of the demo domain's rubric. data/make_incidents.py imports all three: the dataset's prompts carry
# TRIAGE_INSTRUCTION, its gold severities follow SEVERITY_SCALE, and it writes DEFAULT_RUBRIC to RUBRIC_PATH.
TRIAGE_INSTRUCTION = "Triage this incident report. Answer with the severity (SEV1–SEV4), a one-sentence summary and next steps."

SEVERITY_SCALE = """\
SEV1 (critical): any of
  - a customer-facing critical path (login/auth, checkout, payments, ordering, bookings, the public
    API, money movement) is fully down or failing for most users;
  - confirmed loss or corruption of customer or financial data (deleted records, wrong balances,
    duplicate charges);
  - an active security breach (confirmed unauthorized access, data exfiltration, stolen credentials
    in use, accounts being taken over);
  - revenue has stopped.
SEV2 (major): any of
  - a partial outage or major degradation hitting a significant subset of users (roughly 5% or more
    of users or requests, a whole region, a whole platform such as one mobile app, or a key feature);
  - severe latency on a critical path (multi-second responses, a share of requests timing out);
  - an exploitable security vulnerability exposed to attackers, with no evidence of exploitation;
  - wrong or stale data shown to many customers;
  - a problem that will become SEV1 within hours unless someone acts now.
SEV3 (minor): any of
  - minor degradation, or a problem limited to a few customers (well under 5%);
  - a non-critical feature or internal tooling broken, especially when a workaround exists;
  - an imminent risk with no user impact yet that needs action within days (certificate expiring
    in days with renewal failing, disk projected full, runaway cloud spend).
SEV4 (low): no user impact at all:
  - cosmetic issues, informational notices and reminders, vendor announcements;
  - false-positive or self-resolved pages, alerts caused by monitoring itself;
  - problems confined to staging, test or CI environments.
Tie-break: pick the highest level that any stated fact justifies. A workaround lowers the level
only when affected users can actually use it; already-mitigated incidents are rated by the impact
they had."""

DEFAULT_RUBRIC = f"""\
# Incident triage: judging rubric

You compare two answers (A and B) to the same incident report. The task given to the model was:

> {TRIAGE_INSTRUCTION}

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

with 2 to 4 bullets and nothing else (no preamble, no headings, no closing remarks). An answer
that breaks the format (missing line, several sentences in the summary, prose instead of bullets,
extra text) loses to one that keeps it, unless the conforming answer is badly wrong on severity.

## 2. Severity correctness

Rate the report yourself with the scale below, then prefer the answer whose severity matches.
If neither matches, prefer the one that is off by fewer levels. Under-rating a real SEV1 (calling
an active breach or a full checkout outage minor) is worse than over-rating by one level.

```
{SEVERITY_SCALE}
```

## 3. Summary faithfulness

The summary must state what is broken, where (the service, and the region or platform when the
report gives one) and the impact, using only facts from the report. Penalize invented numbers,
causes or services, and summaries that contradict the report (for example calling a false-positive
page an outage).

## 4. Concrete next steps

Good bullets are specific and actionable: they name the service, the action (roll back a named
version, fail over a region, revoke a key, page a named team, post a status update) and fit the
report's facts, including what was already tried. Generic advice ("investigate the issue",
"monitor the situation") is worse than a specific action.

## 5. Brevity

Between two otherwise equal answers, prefer the shorter, plainer one. Length is never a merit in
itself.
"""


def rubric_hash(text: str) -> str:
    """Short sha256 of a rubric, stored with each verdict so changed rubrics are told apart."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def default_rubric() -> str:
    """The demo-domain rubric: data/severity_rubric.md when present and non-empty, else DEFAULT_RUBRIC."""
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
