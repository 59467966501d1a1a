"""Message Batches for the Anthropic judge: submit both screen orders of every pair, poll, ingest the results.

`AnthropicJudge` (models/judge_anthropic.py) inherits `MessageBatches`, which uses its request parameters
(`params`), its response parsing (`verdict_from_message`) and its backoff (`_call`, `_scrub`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from common.errors import JudgeError
from models.judge_types import ORDERS, BatchItem, Order, PairVerdict, Verdict

logger = logging.getLogger(__name__)

MAX_BATCH_REQUESTS = 100_000  # the Message Batches API's limit per batch


class MessageBatches:
    """The Message Batches half of `AnthropicJudge`."""

    client: Any
    sleep: Callable[[float], None]

    def submit_batch(self, items: list[BatchItem]) -> str:
        """Create one Message Batch with two requests per item (custom_id-ab, custom_id-ba); its id."""
        if not items:
            raise JudgeError("no pairs to judge: the batch would be empty")
        seen: set[str] = set()
        requests = []
        for item in items:
            if item.custom_id in seen:
                raise JudgeError(f"duplicate batch item id {item.custom_id!r}")
            seen.add(item.custom_id)
            for order, (first, second) in ((Order.AB, (item.a, item.b)), (Order.BA, (item.b, item.a))):
                params = self.params(item.prompt, first, second, item.gold)
                requests.append({"custom_id": f"{item.custom_id}-{order}", "params": params})
        if len(requests) > MAX_BATCH_REQUESTS:
            raise JudgeError(
                f"{len(items)} pairs make {len(requests)} requests, over the batch limit of {MAX_BATCH_REQUESTS}"
            )
        batch = self._call(
            "Message Batch submission", lambda: self.client.messages.batches.create(requests=requests)
        )
        logger.info("submitted Message Batch %s with %d requests", batch.id, len(requests))
        return batch.id

    def _retrieve(self, batch_id: str):
        """The batch object, with backoff."""
        return self._call(
            f"Message Batch {batch_id} status", lambda: self.client.messages.batches.retrieve(batch_id)
        )

    def batch_status(self, batch_id: str) -> str:
        """The batch's processing_status: 'in_progress', 'canceling' or 'ended'."""
        return self._retrieve(batch_id).processing_status

    def batch_results(self, batch_id: str) -> dict[str, PairVerdict]:
        """PairVerdicts of an ended batch keyed by item custom_id; errored/expired/canceled orders → 'failed'."""
        status = self.batch_status(batch_id)
        if status != "ended":
            raise JudgeError(
                f"Message Batch {batch_id} has not ended yet ({status}); fetch its results later"
            )
        # Read the whole stream inside the retried call, so a connection dropped mid-stream is retried too.
        entries = self._call(
            f"Message Batch {batch_id} results", lambda: list(self.client.messages.batches.results(batch_id))
        )
        found: dict[str, dict[str, Verdict]] = {}
        errors: dict[str, list[str]] = {}
        for entry in entries:
            item_id, _, order = entry.custom_id.rpartition("-")
            if not item_id or order not in ORDERS:
                logger.warning("ignoring batch result with unexpected custom_id %r", entry.custom_id)
                continue
            found.setdefault(item_id, {})
            problems = errors.setdefault(item_id, [])
            result = entry.result
            if result.type == "succeeded":
                try:
                    found[item_id][order] = self.verdict_from_message(
                        result.message, Order(order), batch_id=batch_id
                    )
                except JudgeError as err:
                    problems.append(f"{order}: {err}")
            elif result.type == "errored":
                detail = result.error.error
                problems.append(f"{order}: errored ({detail.type}: {detail.message})")
            elif result.type == "expired":
                problems.append(f"{order}: expired before the batch ran it")
            else:
                problems.append(f"{order}: {result.type}")
        return {
            item_id: PairVerdict.combine(
                verdicts.get(Order.AB),
                verdicts.get(Order.BA),
                error=self._scrub("; ".join(sorted(errors[item_id]))) or None,
            )
            for item_id, verdicts in found.items()
        }

    def run_batch(
        self,
        items: list[BatchItem],
        *,
        poll_interval: float = 30.0,
        timeout: float = 26 * 3600.0,
        progress: Callable[[int, int], None] | None = None,
        on_submit: Callable[[str], None] | None = None,
    ) -> dict[str, PairVerdict]:
        """Submit, poll through the injected sleep until the batch ends, then ingest its results.

        `on_submit(batch_id)` runs as soon as the batch exists, before any wait: store the id there, so a
        killed run can resume the batch with `wait_batch` instead of paying for a second one.
        """
        batch_id = self.submit_batch(items)
        if on_submit is not None:
            on_submit(batch_id)
        return self.wait_batch(batch_id, poll_interval=poll_interval, timeout=timeout, progress=progress)

    def wait_batch(
        self,
        batch_id: str,
        *,
        poll_interval: float = 30.0,
        timeout: float = 26 * 3600.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, PairVerdict]:
        """Poll an existing batch through the injected sleep until it ends, then ingest its results."""
        waited = 0.0
        while True:
            batch = self._retrieve(batch_id)
            counts = batch.request_counts
            done = counts.succeeded + counts.errored + counts.canceled + counts.expired
            if progress is not None:
                progress(done, done + counts.processing)
            if batch.processing_status == "ended":
                break
            # Counted in slept seconds rather than wall time so a fake sleep makes this deterministic.
            if waited >= timeout:
                raise JudgeError(
                    f"Message Batch {batch_id} still {batch.processing_status} after {timeout:g}s; "
                    "fetch its results later with batch_results"
                )
            self.sleep(poll_interval)
            waited += poll_interval
        return self.batch_results(batch_id)
