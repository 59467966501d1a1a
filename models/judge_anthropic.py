"""Claude as the pairwise judge: structured verdicts, PrefLab's own backoff, and Message Batches."""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any

from errors import JudgeError
from models.judge_rubric import default_rubric, rubric_hash
from models.judge_types import (
    ORDERS,
    BatchItem,
    Messages,
    Order,
    PairVerdict,
    Verdict,
    judge_label,
    one_line,
    render_prompt,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-opus-4-7"
MAX_BATCH_REQUESTS = 100_000  # the Message Batches API's limit per batch
# The SDK 2.10 structured-output format (`output_config={"format": {"type": "json_schema", ...}}`):
# the verdict arrives as one JSON text block. Rationale comes first so the model reasons before it decides.
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "description": "two to four sentences: why the winner is better"},
        "winner": {"type": "string", "enum": ["1", "2", "tie"]},
        "confidence": {"type": "number", "description": "0 to 1: how sure you are of the winner"},
    },
    "required": ["rationale", "winner", "confidence"],
    "additionalProperties": False,
}
SYSTEM_PREAMBLE = """\
You are an impartial judge comparing two responses to the same prompt, following the rubric below.
The responses are labelled Response 1 and Response 2; their order is random, so it must not
influence you, and neither must their length beyond what the rubric says. Where the rubric speaks
of answers A and B, it means Response 1 and Response 2. In the rationale, refer to them as
Response 1 and Response 2. Answer "tie" only when neither is better under the rubric.

<rubric>
"""
# The longest server retry-after PrefLab waits in one go (honoured beyond max_delay, which caps its own backoff).
MAX_RETRY_AFTER = 600.0
RATE_LIMIT_STATUSES = (429, 529)  # too many requests, overloaded: slow everything down, not just this pair
_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")
_RESPONSE_N = re.compile(r"\b(Response|response) ([12])\b")


def build_anthropic_client(api_key: str | None = None, *, http_client=None, timeout: float = 60.0):
    """The one place a real Anthropic client is built: SDK retries off (PrefLab backs off itself)."""
    import anthropic

    key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
    if not key or not key.strip():
        raise JudgeError(
            "ANTHROPIC_API_KEY is not set: export it, or use the rule-based judge (--judge rule)"
        )
    return anthropic.Anthropic(api_key=key.strip(), max_retries=0, timeout=timeout, http_client=http_client)


class JudgeCallError(JudgeError):
    """A judge request that gave up; says whether the API asked PrefLab to slow down, and for how long."""

    def __init__(
        self, message: str, *, rate_limited: bool = False, retry_after: float | None = None, status=None
    ):
        super().__init__(message)
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        self.status = status


def _rate_limit(err: Exception) -> tuple[bool, float | None]:
    """(whether the error is a 429/529, the server's retry-after in seconds when it gave a usable one)."""
    response = getattr(err, "response", None)
    status = getattr(err, "status_code", None)
    hinted = _retry_after(response.headers) if response is not None else None
    return status in RATE_LIMIT_STATUSES, hinted


def _retryable(err: Exception) -> bool:
    """429, 408, 5xx, timeouts and connection errors are worth another try; other 4xx are not."""
    import anthropic

    if isinstance(err, anthropic.APIConnectionError):  # APITimeoutError is a subclass
        return True
    if isinstance(err, anthropic.APIStatusError):
        hint = err.response.headers.get("x-should-retry")
        if hint in ("true", "false"):
            return hint == "true"
        return err.status_code in (408, 429) or err.status_code >= 500
    return False


def _describe(err: Exception) -> str:
    """One plain line for an SDK error, never including request headers (where the key travels)."""
    import anthropic

    if isinstance(err, anthropic.APITimeoutError):
        return "request timed out"
    if isinstance(err, anthropic.APIConnectionError):
        return "cannot reach the Anthropic API (connection error)"
    if isinstance(err, anthropic.APIStatusError):
        status, detail = err.status_code, err.api_message or err.type or "no details"
        if status == 401:
            return "ANTHROPIC_API_KEY rejected (HTTP 401)"
        if status == 403:
            return f"ANTHROPIC_API_KEY lacks permission (HTTP 403): {detail}"
        if status == 404:
            return f"not found (HTTP 404): {detail}; check the model name"
        if status == 429:
            return f"rate limited (HTTP 429): {detail}"
        if status >= 500:
            return f"Anthropic API error (HTTP {status}): {detail}"
        return f"request rejected (HTTP {status}): {detail}"
    return f"{type(err).__name__}: {err}"


class AnthropicJudge:
    """Pairwise judge backed by Claude; asks both screen orders and only trusts consistent answers."""

    name = "anthropic"

    def __init__(
        self,
        client,
        *,
        model: str = DEFAULT_MODEL,
        rubric: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        max_tokens: int = 1024,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        if base_delay < 0 or max_delay < 0:
            raise ValueError(
                f"delays must be non-negative, got base_delay={base_delay!r}, max_delay={max_delay!r}"
            )
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens!r}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be within 0..1, got {jitter!r}")
        self.client = client
        self.model = model
        self.rubric = default_rubric() if rubric is None else rubric
        if not self.rubric.strip():
            raise JudgeError("the judge rubric is empty")
        self.rubric_hash = rubric_hash(self.rubric)
        self.label = judge_label(self.name, model)
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_tokens = max_tokens
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.system = SYSTEM_PREAMBLE + self.rubric.strip() + "\n</rubric>"

    # ---- one request -------------------------------------------------------------------------

    def params(self, prompt: Messages, first: str, second: str, gold: dict | None = None) -> dict:
        """Messages API parameters for one screen order (shared by direct calls and batches)."""
        parts = [f"<prompt>\n{render_prompt(prompt)}\n</prompt>"]
        reference = (
            gold if isinstance(gold, str) else (gold or {}).get("answer") or (gold or {}).get("severity")
        )
        if reference:
            parts.append(f"<reference_answer>\n{reference}\n</reference_answer>")
        parts.append(f"Response 1:\n<response_1>\n{first}\n</response_1>")
        parts.append(f"Response 2:\n<response_2>\n{second}\n</response_2>")
        parts.append("Which response is better under the rubric?")
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            # The rubric is identical across requests: cache it.
            "system": [{"type": "text", "text": self.system, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "\n\n".join(parts)}],
            "output_config": {"format": {"type": "json_schema", "schema": VERDICT_SCHEMA}},
        }

    def judge_order(
        self,
        prompt: Messages,
        first: str,
        second: str,
        *,
        gold: dict | None = None,
        position_order: Order = "ab",
    ) -> Verdict:
        """Ask once with `first` shown as Response 1; JudgeError (one line) when no verdict comes back."""
        if position_order not in ORDERS:
            raise ValueError(f"position_order must be 'ab' or 'ba', got {position_order!r}")
        params = self.params(prompt, first, second, gold)
        message = self._call("Anthropic judge request", lambda: self.client.messages.create(**params))
        return self.verdict_from_message(message, position_order)

    def judge_pair(self, prompt: Messages, a: str, b: str, *, gold: dict | None = None) -> PairVerdict:
        """Ask A-first then B-first and combine; never raises, failures become status 'failed'."""
        verdicts: dict[str, Verdict] = {}
        try:
            for order, (first, second) in (("ab", (a, b)), ("ba", (b, a))):
                # Stop at the first failure: the pair is failed anyway, and a second order would only
                # spend more time and tokens against the same outage.
                verdicts[order] = self.judge_order(prompt, first, second, gold=gold, position_order=order)
        except JudgeError as err:
            return PairVerdict.combine(
                verdicts.get("ab"),
                verdicts.get("ba"),
                error=str(err),
                rate_limited=getattr(err, "rate_limited", False),
                retry_after=getattr(err, "retry_after", None),
            )
        except Exception as err:  # a background job needs a verdict row, not a dead thread
            logger.exception("unexpected error while judging a pair")
            reason = self._scrub(f"unexpected {type(err).__name__}: {err}")
            return PairVerdict.combine(verdicts.get("ab"), verdicts.get("ba"), error=reason)
        return PairVerdict.combine(verdicts["ab"], verdicts["ba"])

    def applies(self, gold) -> bool:
        """Claude judges any pair, with or without a gold answer."""
        return True

    def verdict_from_message(self, message, position_order: Order, *, batch_id: str | None = None) -> Verdict:
        """Parse a Messages API response into a Verdict whose winner names a/b."""
        if message.stop_reason == "refusal":
            raise JudgeError("the model refused to judge this pair")
        if message.stop_reason == "max_tokens":
            raise JudgeError(f"the verdict was cut off at max_tokens={self.max_tokens}")
        text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
        try:
            data = json.loads(text)
            label = str(data["winner"]).strip().lower()
            confidence = min(1.0, max(0.0, float(data.get("confidence", 0.5))))
            rationale = str(data.get("rationale", "")).strip()
        except (ValueError, TypeError, KeyError, AttributeError):
            raise JudgeError(f"the judge returned no parseable verdict: {one_line(text, 120)!r}") from None
        shown = ("a", "b") if position_order == "ab" else ("b", "a")
        mapping = {"1": shown[0], "2": shown[1], "tie": "tie"}
        if label not in mapping:
            raise JudgeError(f"the judge returned an unknown winner {label!r}")
        # The model speaks of screen positions; PrefLab stores and shows underlying A/B.
        rationale = _RESPONSE_N.sub(lambda m: f"{m.group(1)} {shown[int(m.group(2)) - 1].upper()}", rationale)
        usage = {k: v for k, v in message.usage.model_dump().items() if isinstance(v, int | float | str)}
        return Verdict(
            winner=mapping[label],
            rationale=rationale,
            confidence=confidence,
            position_order=position_order,
            usage=usage,
            judge=self.name,
            model=getattr(message, "model", None) or self.model,
            rubric_hash=self.rubric_hash,
            batch_id=batch_id,
        )

    # ---- backoff -----------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one SDK call with PrefLab's deterministic backoff; JudgeError (one line) when it gives up."""
        import anthropic

        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except anthropic.AnthropicError as err:
                reason = self._scrub(_describe(err))
                rate_limited, hinted = _rate_limit(err)
                info = {
                    "rate_limited": rate_limited,
                    "retry_after": hinted,
                    "status": getattr(err, "status_code", None),
                }
                if not _retryable(err):
                    raise JudgeCallError(f"{what} failed: {reason}", **info) from None
                if attempt == self.max_attempts:
                    raise JudgeCallError(
                        f"{what} failed after {attempt} attempts: {reason}", **info
                    ) from None
                delay = self._delay(attempt, err)
                logger.warning(
                    "%s: %s; retrying in %.1fs (attempt %d of %d)",
                    what,
                    reason,
                    delay,
                    attempt,
                    self.max_attempts,
                )
                self.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, err: Exception) -> float:
        """The server's retry-after when it gives a usable one (up to MAX_RETRY_AFTER, even beyond max_delay),
        else base_delay * 2^(attempt-1) capped at max_delay; plus up to `jitter` of it, so clients spread out."""
        _, hinted = _rate_limit(err)
        if hinted is not None:
            delay = min(hinted, MAX_RETRY_AFTER)
        else:
            delay = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return delay * (1 + self.jitter * self.rng.random()) if self.jitter else delay

    def _scrub(self, text: str) -> str:
        """Keep the API key out of anything PrefLab shows or logs, whatever a server echoes back."""
        key = getattr(self.client, "api_key", None)
        if isinstance(key, str) and key:
            text = text.replace(key, "[redacted]")
        return one_line(_KEY_PATTERN.sub("[redacted]", text))

    # ---- Message Batches ---------------------------------------------------------------------

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
            for order, (first, second) in (("ab", (item.a, item.b)), ("ba", (item.b, item.a))):
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
                        result.message, order, batch_id=batch_id
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
                verdicts.get("ab"),
                verdicts.get("ba"),
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


def _retry_after(headers) -> float | None:
    """Positive seconds from retry-after-ms or retry-after (seconds or an HTTP date); None when absent, in the
    past, or malformed in any way (a header from the network must never crash the judge)."""
    try:
        ms = _finite(float(headers["retry-after-ms"]) / 1000)
        if ms is not None:
            return ms
    except Exception:
        pass
    try:
        value = str(headers.get("retry-after") or "").strip()
        if not value:
            return None
        try:
            return _finite(float(value))
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            return None if parsed is None else _finite(float(email.utils.mktime_tz(parsed) - time.time()))
    except Exception:  # out-of-range dates, odd types: fall back to PrefLab's own backoff
        return None


def _finite(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) and seconds > 0 else None
