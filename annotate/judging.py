"""Bulk pre-judging of pairs (inline or via Message Batches) and accepting consistent verdicts as labels."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from annotate.suggestions import Suggester

log = logging.getLogger(__name__)


@dataclass
class JudgeReport:
    """What a bulk judging run did."""

    judged: int = 0
    consistent: int = 0
    unsure: int = 0
    failed: int = 0
    accepted: int = 0
    batch_id: str | None = None
    first_error: str | None = None

    def add(self, verdict) -> None:
        self.judged += 1
        if verdict.status == "ok":
            self.consistent += 1
        elif verdict.status == "unsure":
            self.unsure += 1
        else:
            self.failed += 1
            self.first_error = self.first_error or verdict.error

    def summary(self, label: str) -> str:
        text = (
            f"{label}: judged {self.judged} pairs in both orders: {self.consistent} consistent, "
            f"{self.unsure} position-inconsistent, {self.failed} failed"
        )
        if self.accepted:
            text += f"; {self.accepted} accepted as judge labels"
        if self.first_error:
            text += f" (first failure: {self.first_error})"
        return text


def judge_pending(
    suggester: Suggester,
    *,
    limit: int | None = None,
    batch: bool = False,
    progress: Callable[[int, int], None] | None = None,
    poll_interval: float = 30.0,
) -> JudgeReport:
    """Judge every pair this judge/model/rubric has not judged yet."""
    store, judge = suggester.store, suggester.judge
    pair_ids = store.pairs_without_verdict(judge.name, judge.model, judge.rubric_hash, limit=limit)
    report = JudgeReport()
    if not pair_ids:
        return report
    if batch:
        if not hasattr(judge, "run_batch"):
            from errors import UserInputError

            raise UserInputError(f"--batch needs the Anthropic judge; {judge.label} answers instantly")
        from models.judge import BatchItem

        items = []
        for pid in pair_ids:
            pair, left, right = suggester.screen_texts(pid)
            items.append(BatchItem(f"pair{pid}", pair.messages, left, right, pair.gold))
        results = judge.run_batch(items, poll_interval=poll_interval, progress=progress)
        for pid in pair_ids:
            verdict = results.get(f"pair{pid}")
            if verdict is None:
                from models.judge import PairVerdict

                verdict = PairVerdict.combine(None, None, error="missing from the batch results")
            report.batch_id = report.batch_id or _batch_id(verdict)
            report.add(suggester.store_verdict(pid, verdict))
        return report
    for i, pid in enumerate(pair_ids, 1):
        report.add(suggester.compute(pid))
        if progress:
            progress(i, len(pair_ids))
    return report


def _batch_id(verdict) -> str | None:
    for v in (verdict.ab, verdict.ba):
        if v is not None and v.batch_id:
            return v.batch_id
    return None


def accept_consistent(suggester: Suggester) -> int:
    """Store position-consistent verdicts as labels (source judge, annotator judge:<name>); returns how many."""
    store, judge = suggester.store, suggester.judge
    annotator = f"judge:{judge.name}" + (f":{judge.model}" if judge.model else "")
    labelled = {int(p) for p in store.label_frame().query("annotator == @annotator")["pair_id"]}
    accepted = 0
    for pid in store.pairs_with_verdict(judge.name, judge.model, judge.rubric_hash):
        if pid in labelled:
            continue
        verdict = suggester.cached(pid)
        if verdict is None or verdict.status != "ok" or verdict.suggestion is None:
            continue
        # cached() speaks screen terms; the label records gen_a/gen_b.
        order = suggester.order(pid)
        decision = (
            {"a": "b", "b": "a"}.get(verdict.suggestion, verdict.suggestion)
            if order.swapped
            else verdict.suggestion
        )
        store.add_label(pid, annotator, decision, source="judge", suggestion=decision, suggestion_shown=False)
        accepted += 1
    return accepted
