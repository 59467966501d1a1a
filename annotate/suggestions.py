"""Judge suggestions for pairs: asked in screen order, cached per (pair, judge, model, rubric), prefetched."""

from __future__ import annotations

import logging
import queue
import random
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DisplayOrder:
    """Which response of a pair is shown as A (left), and whether the suggestion is hidden, from a seed."""

    seed: int
    swapped: bool  # True: gen_b is shown as A (left)
    hide_suggestion: bool  # drawn for the unprimed-agreement sample


def display_order(base_seed: int, pair_id: int, hide_fraction: float, *, secret: bytes) -> DisplayOrder:
    """Per-pair screen order and hide draw from a recorded seed keyed by the install secret (unpredictable)."""
    from settings import keyed_seed

    seed = keyed_seed(secret, base_seed, "pair", pair_id)
    rng = random.Random(seed)
    return DisplayOrder(seed, rng.random() < 0.5, rng.random() < hide_fraction)


def _store_secret(store) -> bytes:
    """The install secret of the home that holds the store's database (a throwaway one for `:memory:`)."""
    import secrets
    from pathlib import Path

    from settings import Paths

    if str(store.path) == ":memory:":
        return secrets.token_bytes(32)
    return Paths(Path(store.path).parent).install_secret()


_FLIP = {"a": "b", "b": "a", "tie": "tie", "both_bad": "both_bad", None: None}
_FLIP_ORDER = {"ab": "ba", "ba": "ab"}


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
    ):
        self.store = store
        self.judge = judge
        self.base_seed = base_seed
        self.secret = secret if secret is not None else _store_secret(store)
        self.hide_fraction = hide_fraction
        self.prefetch_depth = prefetch
        self._queue: queue.Queue[int] = queue.Queue()
        self._pending: set[int] = set()
        self._errors: dict[int, str] = {}
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        # The rule judge answers in microseconds: computing inline is simpler than a round trip.
        self.inline = getattr(judge, "name", "") == "rule"

    @property
    def label(self) -> str:
        return getattr(self.judge, "label", "judge")

    def _key(self) -> tuple[str, str | None, str]:
        return self.judge.name, self.judge.model, self.judge.rubric_hash

    def order(self, pair_id: int) -> DisplayOrder:
        return display_order(self.base_seed, pair_id, self.hide_fraction, secret=self.secret)

    def cached(self, pair_id: int):
        """The PairVerdict in screen terms from stored verdicts, or None when not judged yet."""
        from models.judge import PairVerdict, Verdict

        rows = self.store.verdicts_for_pair(pair_id, *self._key())
        if len(rows) < 2:
            if pair_id in self._errors:
                return PairVerdict.combine(None, None, error=self._errors[pair_id])
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
        return PairVerdict.combine(verdicts.get("ab"), verdicts.get("ba"))

    def screen_texts(self, pair_id: int):
        """(pair view, text shown as A, text shown as B)."""
        pair = self.store.get_pair_view(pair_id)
        swapped = self.order(pair_id).swapped
        left, right = (pair.text_b, pair.text_a) if swapped else (pair.text_a, pair.text_b)
        return pair, left, right

    def compute(self, pair_id: int):
        """Ask the judge (both orders, in screen terms) and store both verdicts in gen terms."""
        pair, left, right = self.screen_texts(pair_id)
        return self.store_verdict(pair_id, self.judge.judge_pair(pair.messages, left, right, gold=pair.gold))

    def store_verdict(self, pair_id: int, verdict):
        """Persist a screen-terms PairVerdict in gen terms; a failure is remembered, not stored, so it retries."""
        from store import VerdictRow

        if verdict.status == "failed":
            self._errors[pair_id] = verdict.error or "judge failed"
            return verdict
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
        self._errors.pop(pair_id, None)
        return verdict

    def get(self, pair_id: int):
        """A verdict for the Annotate tab: cached, computed inline (rule judge), or None while pending."""
        found = self.cached(pair_id)
        if found is not None:
            return found
        if self.inline:
            return self.compute(pair_id)
        self.enqueue([pair_id], front=True)
        return None

    # -- prefetch -------------------------------------------------------------------------------

    def enqueue(self, pair_ids: list[int], *, front: bool = False) -> None:
        """Queue pairs for background judging (the worker starts on first use)."""
        with self._lock:
            for pid in pair_ids:
                if pid not in self._pending:
                    self._pending.add(pid)
                    self._queue.put(pid)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="judge-prefetch", daemon=True)
                self._worker.start()

    def prefetch_unjudged(self) -> None:
        """Judge the next few pairs nobody has seen yet, ahead of the annotators."""
        ids = self.store.pairs_without_verdict(*self._key(), limit=self.prefetch_depth)
        if self.inline:
            for pid in ids:
                self.compute(pid)
        else:
            self.enqueue(ids)

    def _work(self) -> None:
        while True:
            try:
                pair_id = self._queue.get(timeout=30)
            except queue.Empty:
                return
            try:
                if self.cached(pair_id) is None or pair_id in self._errors:
                    self.compute(pair_id)
            except Exception:  # a judge bug must not kill prefetching for everyone
                log.exception("judging pair %s failed", pair_id)
            finally:
                with self._lock:
                    self._pending.discard(pair_id)
