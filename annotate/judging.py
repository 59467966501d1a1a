"""Bulk pre-judging of pairs (inline or via Message Batches) and accepting consistent verdicts as labels.

A Message Batch is recorded as a `judge_batch` job the moment the API returns its id, so a killed
`judge --batch` resumes polling that batch on its next run instead of paying for a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from annotate.suggestions import Suggester
from common.errors import JudgeError, UserInputError
from common.vocab import ACTIVE_STATUSES, JobKind, JobStatus, LabelSource

if TYPE_CHECKING:
    from common.seams import Judge

log = logging.getLogger(__name__)

NO_JUDGE_HINT = "set ANTHROPIC_API_KEY to have Claude judge any data"


@dataclass
class JudgeReport:
    """What a bulk judging run did."""

    judged: int = 0
    consistent: int = 0
    unsure: int = 0
    failed: int = 0
    abstained: int = 0
    accepted: int = 0
    batch_id: str | None = None
    resumed_batch: str | None = None
    first_error: str | None = None
    abstain_reason: str | None = None

    def add(self, verdict) -> None:
        if verdict.status == "abstained":
            self.abstained += 1
            self.abstain_reason = self.abstain_reason or verdict.error
            return
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
        if self.resumed_batch:
            text += f"; resumed Message Batch {self.resumed_batch}"
        if self.accepted:
            text += f"; {self.accepted} accepted as judge labels"
        if self.first_error:
            text += f" (first failure: {self.first_error})"
        if self.abstained:
            text += (
                f"; no judge applies to {self.abstained} pairs, nothing stored for them "
                f"({(self.abstain_reason or '').rstrip('.')}; {NO_JUDGE_HINT})"
            )
        return text


def build_judge(kind: str, *, model: str | None = None, rubric_path: str | None = None) -> Judge:
    """The judge `launch.py judge` names: its kind, model and rubric file (JudgeError naming a bad file)."""
    from models.judge import load_rubric, make_judge

    rubric = load_rubric(rubric_path) if rubric_path else None
    return make_judge(kind, model=model, rubric=rubric)


def judge_all(
    ctx,
    judge: Judge,
    *,
    limit: int | None = None,
    batch: bool = False,
    poll_interval: float = 30.0,
    accept: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> JudgeReport:
    """`launch.py judge`: judge every pending pair with `judge`, then (`accept`) store the consistent verdicts as
    judge labels; what it did."""
    suggester = Suggester(ctx.store, judge)
    report = judge_pending(
        suggester, limit=limit, batch=batch, progress=progress, poll_interval=poll_interval
    )
    if accept:
        report.accepted = accept_consistent(suggester)
    return report


def judge_pending(
    suggester: Suggester,
    *,
    limit: int | None = None,
    batch: bool = False,
    progress: Callable[[int, int], None] | None = None,
    poll_interval: float = 30.0,
) -> JudgeReport:
    """Judge every pair this judge/model/rubric has not judged yet (pairs it does not apply to are skipped)."""
    if batch:
        return _judge_in_batches(suggester, limit=limit, progress=progress, poll_interval=poll_interval)
    store = suggester.store
    pair_ids = store.pairs_without_verdict(*suggester.key, limit=limit)
    report = JudgeReport()
    for i, pid in enumerate(pair_ids, 1):
        suggester.wait_out_pause()
        report.add(suggester.compute(pid))
        if progress:
            progress(i, len(pair_ids))
    return report


def _judge_in_batches(
    suggester: Suggester, *, limit: int | None, progress, poll_interval: float
) -> JudgeReport:
    """Resume this judge's unfinished Message Batches, then submit one for the pairs still unjudged."""
    from models.judge import BatchItem

    store, judge = suggester.store, suggester.judge
    if not hasattr(judge, "run_batch") or not hasattr(judge, "wait_batch"):
        raise UserInputError(f"--batch needs the Anthropic judge; {judge.label} answers instantly")
    report = JudgeReport()
    covered: set[int] = set()
    for job in _unfinished_batches(store, suggester):
        covered |= _resume(suggester, job, report, progress=progress, poll_interval=poll_interval)
    pair_ids = [p for p in store.pairs_without_verdict(*suggester.key) if p not in covered]
    if limit is not None:
        pair_ids = pair_ids[:limit]
    items, swaps = [], {}
    for pid in pair_ids:
        pair, left, right = suggester.screen_texts(pid)
        if not suggester.applies(pair):
            report.add(suggester.abstained())
            continue
        swaps[pid] = suggester.order(pid).swapped  # results come back in these screen terms
        items.append(BatchItem(f"pair{pid}", pair.messages, left, right, pair.gold))
    if not items:
        return report
    name, model, rubric = suggester.key
    params = {
        "judge": name,
        "model": model,
        "rubric_hash": rubric,
        "pairs": [[p, s] for p, s in swaps.items()],
    }
    job_id = store.create_job(JobKind.JUDGE_BATCH, params, total=len(items))
    store.update_job(job_id, status=JobStatus.RUNNING)
    submitted: list[str] = []

    def remember(batch_id: str) -> None:
        # Before the first wait: from here on a kill leaves a job its next run resumes.
        submitted.append(batch_id)
        store.update_job(job_id, result={"batch_id": batch_id})

    try:
        results = judge.run_batch(items, poll_interval=poll_interval, progress=progress, on_submit=remember)
    except JudgeError as exc:
        store.update_job(job_id, status=JobStatus.FAILED, error=str(exc))
        raise
    _ingest(suggester, job_id, submitted[0], swaps, results, report)
    return report


def _unfinished_batches(store, suggester: Suggester) -> list:
    """This judge's batch jobs whose batch was created but whose results were never stored, oldest first."""
    name, model, rubric = suggester.key
    found = []
    for job in store.jobs_with_status(JobKind.JUDGE_BATCH, (*ACTIVE_STATUSES, JobStatus.FAILED)):
        p = job.params
        if (p.get("judge"), p.get("model"), p.get("rubric_hash")) != (name, model, rubric):
            continue
        if (job.result or {}).get("batch_id") and p.get("pairs"):
            found.append(job)
    return found


def _resume(suggester: Suggester, job, report: JudgeReport, *, progress, poll_interval: float) -> set[int]:
    """Poll a recorded batch until it ends and store its results; the pairs it covered."""
    store, judge = suggester.store, suggester.judge
    batch_id = job.result["batch_id"]
    swaps = {int(pid): bool(swapped) for pid, swapped in job.params["pairs"]}
    log.info("resuming Message Batch %s of job #%s (%d pairs)", batch_id, job.id, len(swaps))
    report.resumed_batch = report.resumed_batch or batch_id
    store.update_job(job.id, status=JobStatus.RUNNING)
    try:
        results = judge.wait_batch(batch_id, poll_interval=poll_interval, progress=progress)
    except JudgeError as exc:
        if getattr(exc, "status", None) == 404:  # the batch is gone: its pairs go into a new one
            store.update_job(
                job.id, status=JobStatus.CANCELLED, error=f"Message Batch {batch_id} no longer exists"
            )
            return set()
        store.update_job(job.id, status=JobStatus.FAILED, error=str(exc))
        raise
    _ingest(suggester, job.id, batch_id, swaps, results, report)
    return set(swaps)


def _ingest(
    suggester: Suggester, job_id: int, batch_id: str, swaps: dict[int, bool], results, report
) -> None:
    """Store a batch's verdicts in the screen order each pair was sent in, then mark its job done."""
    from models.judge import PairVerdict

    store = suggester.store
    report.batch_id = report.batch_id or batch_id
    for pid, swapped in swaps.items():
        if len(store.verdicts_for_pair(pid, *suggester.key)) >= 2:
            continue  # stored by an earlier, interrupted ingest
        verdict = results.get(f"pair{pid}") or PairVerdict.combine(
            None, None, error="missing from the batch results"
        )
        report.add(suggester.store_verdict(pid, verdict, swapped=swapped))
    store.update_job(job_id, status=JobStatus.DONE, progress=len(swaps), result={"batch_id": batch_id})


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
        store.add_label(
            pid, annotator, decision, source=LabelSource.JUDGE, suggestion=decision, suggestion_shown=False
        )
        accepted += 1
    return accepted
