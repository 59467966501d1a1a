"""The Anthropic client, its errors, and PrefLab's backoff: which failures are retried, how long to wait, and
keeping the API key out of every message. `AnthropicJudge` (models/judge_anthropic.py) inherits `Backoff`.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any

from common.errors import JudgeError
from models.judge_types import one_line

logger = logging.getLogger(__name__)

# The longest server retry-after PrefLab waits in one go (honoured beyond max_delay, which caps its own backoff).
MAX_RETRY_AFTER = 600.0
RATE_LIMIT_STATUSES = (429, 529)  # too many requests, overloaded: slow everything down, not just this pair
_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")


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


class Backoff:
    """PrefLab's deterministic backoff around SDK calls, for a class with a `client`, an injectable `sleep`, an
    `rng`, and the settings `max_attempts`, `base_delay`, `max_delay` and `jitter`."""

    client: Any
    sleep: Callable[[float], None]
    rng: random.Random
    max_attempts: int
    base_delay: float
    max_delay: float
    jitter: float

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
