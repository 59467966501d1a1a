"""Judge suggestions for pairs: asked in screen order, cached per (pair, judge, model, rubric), prefetched.

Failures are stored with an attempt count and a next-retry time, so a pair the API rejects is not sent again
on every vote; a 429/529 pauses all judging for the server's retry-after; the pair on screen goes first.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

from common.settings import keyed_seed, store_secret
from common.vocab import Decision, Order

log = logging.getLogger(__name__)

RETRY_BASE_S = 60.0  # a failed pair is sent again after about 1 min, then 5, 25, 125 ...
RETRY_FACTOR = 5.0
RETRY_MAX_ATTEMPTS = 5  # then only an explicit `launch.py judge` run sends it again
RATE_LIMIT_PAUSE_S = 30.0  # a 429/529 that gave no usable retry-after
JITTER = 0.1  # up to 10% more on every wait, so several processes do not retry in step
IDLE_EXIT_S = 30.0  # the prefetch thread ends after this long without work


@dataclass(frozen=True)
class DisplayOrder:
    """Which response of a pair is shown as A (left), and whether the suggestion is hidden, from a seed."""

    seed: int
    swapped: bool  # True: gen_b is shown as A (left)
    hide_suggestion: bool  # drawn for the unprimed-agreement sample


def display_order(base_seed: int, pair_id: int, hide_fraction: float, *, secret: bytes) -> DisplayOrder:
    """Per-pair screen order and hide draw from a recorded seed keyed by the install secret (unpredictable)."""
    seed = keyed_seed(secret, base_seed, "pair", pair_id)
    rng = random.Random(seed)
    return DisplayOrder(seed, rng.random() < 0.5, rng.random() < hide_fraction)


# Swapping the screen swaps a and b and the presentation order; a tie or both-bad stays what it is.
_FLIP: dict[str | None, str | None] = {
    Decision.A: Decision.B.value,
    Decision.B: Decision.A.value,
    Decision.TIE: Decision.TIE.value,
    Decision.BOTH_BAD: Decision.BOTH_BAD.value,
    None: None,
}
_FLIP_ORDER: dict[str, str] = {Order.AB: Order.BA.value, Order.BA: Order.AB.value}


def to_gen_terms(winner: str | None, order: str, swapped: bool) -> tuple[str | None, str]:
    """A screen-terms verdict (a = shown as A) as gen terms (a = gen_a); the mapping is its own inverse."""
    return (_FLIP[winner], _FLIP_ORDER[order]) if swapped else (winner, order)


class Suggester:
    """Looks up, computes and prefetches judge verdicts; the judge never runs on a request thread if avoidable."""

    def __init__(
        self,
        store,
        judge,
        *,
        base_seed: int = 0,
        hide_fraction: float = 0.1,
        prefetch: int = 8,
        secret: bytes | None = None,
        clock=time.time,
        sleep=time.sleep,
        rng: random.Random | None = None,
    ):
        self.store = store
        self.judge = judge
        self.base_seed = base_seed
        self.secret = secret if secret is not None else store_secret(store)
        self.hide_fraction = hide_fraction
        self.prefetch_depth = prefetch
        self.clock = clock  # epoch seconds; injectable with `sleep` so tests need not wait
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._todo: deque[int] = deque()  # the left end is judged next
        self._pending: set[int] = set()  # queued or being judged
        self._busy = False
        self._paused_until = 0.0  # epoch seconds: no request before this (a 429/529 asked us to wait)
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        # The rule judge answers in microseconds: computing inline is simpler than a round trip.
        self.inline = getattr(judge, "name", "") == "rule"

    @property
    def label(self) -> str:
        return getattr(self.judge, "label", "judge")

    def _key(self) -> tuple[str, str | None, str]:
        return self.judge.name, self.judge.model, self.judge.rubric_hash

    @property
    def key(self) -> tuple[str, str | None, str]:
        """(judge, model, rubric hash): what verdicts and failures are stored under."""
        return self._key()

    def applies(self, pair) -> bool:
        """Whether the judge can judge this pair at all (the rule judge needs a gold severity)."""
        check = getattr(self.judge, "applies", None)
        return check is None or bool(check(pair.gold))

    def abstained(self):
        """The verdict-less answer for a pair no judge applies to (nothing is stored)."""
        from models.judge import PairVerdict

        reason = getattr(self.judge, "abstain_reason", "") or f"{self.label} does not judge this pair."
        return PairVerdict.abstain(reason)

    def order(self, pair_id: int) -> DisplayOrder:
        return display_order(self.base_seed, pair_id, self.hide_fraction, secret=self.secret)

    def cached(self, pair_id: int):
        """The PairVerdict in screen terms from stored verdicts (or the stored failure); None if not judged yet."""
        from models.judge import PairVerdict, Verdict

        rows = self.store.verdicts_for_pair(pair_id, *self._key())
        if len(rows) < 2:
            failure = self.store.judge_failure(pair_id, *self._key())
            if failure is not None:
                return PairVerdict.combine(None, None, error=failure.error)
            return None
        swapped = self.order(pair_id).swapped
        verdicts = {}
        for r in rows:
            winner, order = to_gen_terms(r.winner, r.position_order, swapped)
            verdicts[order] = Verdict(
                winner,
                r.rationale or "",
                r.confidence or 0.0,
                order,
                r.usage or {},
                r.judge,
                r.model,
                r.rubric_hash,
            )
        return PairVerdict.combine(verdicts.get(Order.AB), verdicts.get(Order.BA))

    def screen_texts(self, pair_id: int):
        """(pair view, text shown as A, text shown as B)."""
        pair = self.store.get_pair_view(pair_id)
        swapped = self.order(pair_id).swapped
        left, right = (pair.text_b, pair.text_a) if swapped else (pair.text_a, pair.text_b)
        return pair, left, right

    def compute(self, pair_id: int):
        """Ask the judge (both orders, in screen terms) and store both verdicts in gen terms.

        A pair the judge does not apply to is not asked, and nothing is stored for it.
        """
        pair, left, right = self.screen_texts(pair_id)
        if not self.applies(pair):
            return self.abstained()
        return self.store_verdict(pair_id, self.judge.judge_pair(pair.messages, left, right, gold=pair.gold))

    def store_verdict(self, pair_id: int, verdict, *, swapped: bool | None = None):
        """Persist a screen-terms PairVerdict in gen terms; a failure is stored with its next-retry time.

        `swapped` is the screen order the judge was asked in, when it was recorded then (a Message Batch).
        """
        from store import VerdictRow

        if verdict.status == "abstained":
            return verdict
        if verdict.status == "failed":
            self._record_failure(pair_id, verdict)
            return verdict
        if swapped is None:
            swapped = self.order(pair_id).swapped
        rows = []
        for v in (verdict.ab, verdict.ba):
            winner, order = to_gen_terms(v.winner, v.position_order, swapped)
            rows.append(
                VerdictRow(
                    pair_id,
                    v.judge,
                    v.model,
                    v.rubric_hash,
                    order,
                    winner,
                    v.rationale,
                    v.confidence,
                    v.usage,
                    v.batch_id,
                )
            )
        self.store.add_verdicts(rows)
        if self.store.judge_failure(pair_id, *self._key()) is not None:
            self.store.clear_judge_failure(pair_id, *self._key())
        return verdict

    def _jittered(self, seconds: float) -> float:
        return seconds * (1 + JITTER * self.rng.random())

    def _record_failure(self, pair_id: int, verdict) -> None:
        """Count the failure and set when the pair may be sent again; a 429/529 pauses all judging."""
        now = self.clock()
        previous = self.store.judge_failure(pair_id, *self._key())
        attempts = (previous.attempts if previous else 0) + 1
        if verdict.rate_limited:
            # Not the pair's fault: it waits out the pause like every other pair, and is never given up on.
            pause = self._jittered(verdict.retry_after or RATE_LIMIT_PAUSE_S)
            with self._cond:
                self._paused_until = max(self._paused_until, now + pause)
            next_retry = now + pause
            log.warning("judge rate limited (%s); pausing judging for %.0f s", verdict.error, pause)
        elif attempts >= RETRY_MAX_ATTEMPTS:
            next_retry = None
            log.warning("judging pair %s failed %d times; giving up: %s", pair_id, attempts, verdict.error)
        else:
            next_retry = now + self._jittered(RETRY_BASE_S * RETRY_FACTOR ** (attempts - 1))
        self.store.record_judge_failure(
            pair_id,
            *self._key(),
            attempts=attempts,
            error=verdict.error or "judge failed",
            next_retry_at=next_retry,
        )

    def due(self, pair_id: int) -> bool:
        """Whether the pair still needs judging and its last failure (if any) may be retried now."""
        if len(self.store.verdicts_for_pair(pair_id, *self._key())) >= 2:
            return False
        failure = self.store.judge_failure(pair_id, *self._key())
        return failure is None or (
            failure.next_retry_at is not None and failure.next_retry_at <= self.clock()
        )

    def wait_out_pause(self) -> None:
        """Sleep until a rate-limit pause is over (returns at once when there is none)."""
        while True:
            with self._cond:
                until = self._paused_until
            left = until - self.clock()
            if left <= 0:
                return
            self.sleep(left)

    def get(self, pair_id: int):
        """A verdict for the Annotate tab: cached, computed inline (rule judge), abstained, or None while pending.

        A stored failure is returned as is until its retry is due; then the pair is queued first.
        """
        found = self.cached(pair_id)
        if found is not None and found.status != "failed":
            return found
        pair = self.store.get_pair_view(pair_id)
        if pair is not None and not self.applies(pair):
            return self.abstained()
        if self.inline:
            return self.compute(pair_id)
        if found is not None and not self.due(pair_id):
            return found
        self.enqueue([pair_id], front=True)
        return None

    # -- prefetch -------------------------------------------------------------------------------

    def enqueue(self, pair_ids: list[int], *, front: bool = False) -> None:
        """Queue pairs for background judging (the worker starts on first use); `front`: judge these next."""
        with self._cond:
            if front:
                for pid in reversed(list(pair_ids)):
                    if pid not in self._pending:
                        self._pending.add(pid)
                        self._todo.appendleft(pid)
                    elif pid in self._todo:  # queued behind others: move it up (being judged: leave it)
                        self._todo.remove(pid)
                        self._todo.appendleft(pid)
            else:
                for pid in pair_ids:
                    if pid not in self._pending:
                        self._pending.add(pid)
                        self._todo.append(pid)
            if self._todo and self._worker is None:
                self._worker = threading.Thread(target=self._work, name="judge-prefetch", daemon=True)
                self._worker.start()
            self._cond.notify_all()

    def prefetch_unjudged(self) -> None:
        """Judge the next few pairs nobody has seen yet, ahead of the annotators (failures only when due)."""
        if self.inline:
            return  # the rule judge answers on demand in microseconds
        ids = self.store.pairs_due_for_judging(*self._key(), now=self.clock(), limit=self.prefetch_depth)
        self.enqueue(ids)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the queue is empty and nothing is being judged; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._todo and not self._busy, timeout)

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._todo:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait_for(lambda: self._todo, timeout=IDLE_EXIT_S)
                    if not self._todo:
                        self._worker = None  # under the lock: the next enqueue starts a new worker
                        return
                pair_id = self._todo.popleft()
                self._busy = True
            try:
                self.wait_out_pause()
                if self.due(pair_id):
                    self.compute(pair_id)
            except Exception:  # a judge bug must not kill prefetching for everyone
                log.exception("judging pair %s failed", pair_id)
            finally:
                with self._cond:
                    self._pending.discard(pair_id)
