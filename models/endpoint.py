"""OpenAI-compatible inference servers: the client that generates cell by cell.

vLLM, SGLang, TGI, llama.cpp's server, Ollama and `transformers serve` all speak the chat completions API. Each
response is its own request (never `n`: several servers ignore it), with its own seed, so a job stores and
resumes cell by cell. The SDK's retries are off: the backoff here has an injectable sleep and decides what is
transient, so a test can see every attempt. The API key is read from an allow-listed environment variable at
client build time and never stored, logged or put in a message. The endpoint's validated settings (URL, served
model, key variable) are models/endpoint_config.py.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from models.endpoint_config import (
    NO_KEY,
    Endpoint,
    EndpointError,
    check_api_key_env,
    check_identifier,
    normalize_url,
)
from models.sampling import Generation, SamplingParams

# The endpoint's settings moved to models/endpoint_config.py; callers and tests still import them from here.
__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_CONCURRENCY",
    "BatchOutcome",
    "Endpoint",
    "EndpointError",
    "EndpointModel",
    "ServedGeneration",
    "check_api_key_env",
    "check_identifier",
    "make_endpoint_model",
    "normalize_url",
]

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 256
DEFAULT_TIMEOUT = 120.0  # seconds per request: a CPU server may take a while for a long response
DEFAULT_ATTEMPTS = 5
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 120.0
TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Seeds go out as 31-bit integers: llama.cpp and others store them in an int32.
SERVER_SEED_MASK = 0x7FFFFFFF
_CONTEXT_TEXT = re.compile(
    r"context.length|context.window|maximum context|max_model_len|model_max_length|too many tokens|"
    r"prompt is too long|exceeds? the (?:model|max)|input.{0,20}too long",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ServedGeneration(Generation):
    """A completion from a server, with what the server reported about it."""

    served_model: str | None = None
    prompt_tokens: int | None = None
    server_seed: int | None = None  # the seed sent, or None when the server refused seeds
    attempts: int = 1

    def params(self) -> dict:
        """What to keep next to the sampling params in `generations.params`."""
        return {
            "served_model": self.served_model,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.n_tokens,
            "latency_s": round(self.seconds, 4),
            "server_seed": self.server_seed,
            "attempts": self.attempts,
        }


@dataclass
class BatchOutcome:
    """The cells a batch finished (None where not sent or failed), and the first permanent error."""

    results: list[ServedGeneration | None]
    error: EndpointError | None = None

    @property
    def done(self) -> int:
        return sum(r is not None for r in self.results)


class _Transient(Exception):
    """A failure worth retrying, with the server's retry-after when it gave one."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class EndpointModel:
    """Generates through one endpoint: one request per response, at most `concurrency` in flight."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        http_client=None,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        import openai

        if not 1 <= int(concurrency) <= MAX_CONCURRENCY:
            raise EndpointError(f"concurrency must be from 1 to {MAX_CONCURRENCY}, got {concurrency!r}")
        self.endpoint = endpoint
        self.concurrency = int(concurrency)
        self.max_attempts = max(1, int(max_attempts))
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._key = endpoint.api_key()
        self._send_seed = True
        self._seed_lock = threading.Lock()
        self._client = openai.OpenAI(
            base_url=endpoint.url,
            api_key=self._key,
            max_retries=0,
            timeout=timeout,
            http_client=http_client,
        )
        # The SDK fills these from OPENAI_ORG_ID, OPENAI_PROJECT_ID and OPENAI_ADMIN_KEY: none of them may ride
        # along to a server the user registered for one model.
        self._client.organization = None
        self._client.project = None
        self._client.admin_api_key = None
        self.fingerprint = endpoint.identity

    # -- one request -------------------------------------------------------------------------------

    def complete(self, messages: list[dict], params: SamplingParams, seed: int) -> ServedGeneration:
        """One chat completion with retries on transient failures; EndpointError on a permanent one."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._once(messages, params, seed, attempt)
            except _Transient as exc:
                if attempt >= self.max_attempts:
                    raise EndpointError(self._clean(f"{exc} (gave up after {attempt} attempts)")) from None
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * (0.5 + self._rng.random())
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, RETRY_AFTER_CAP))
                log.info("endpoint %s: %s; retrying in %.1f s", self.endpoint.url, exc, delay)
                self._sleep(delay)

    def _once(
        self, messages: list[dict], params: SamplingParams, seed: int, attempt: int
    ) -> ServedGeneration:
        import openai

        server_seed = (seed & SERVER_SEED_MASK) if self._send_seed else None
        extra = {} if server_seed is None else {"seed": server_seed}
        began = self._clock()
        try:
            reply = self._client.chat.completions.create(
                model=self.endpoint.request_model,
                messages=messages,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_new_tokens,
                **extra,
            )
        except openai.APITimeoutError:
            raise _Transient(f"the inference server at {self.endpoint.url} did not answer in time") from None
        except openai.APIConnectionError:
            raise _Transient(
                f"the inference server at {self.endpoint.url} is not reachable (is it running?)"
            ) from None
        except openai.APIStatusError as exc:
            if server_seed is not None and exc.status_code in (400, 422) and "seed" in self._detail(exc):
                # A server that refuses the field: send no seeds from now on, and record that.
                log.warning("endpoint %s refuses `seed`; sampling unseeded", self.endpoint.url)
                with self._seed_lock:
                    self._send_seed = False
                return self._once(messages, params, seed, attempt)
            raise self._classify(exc) from None
        seconds = self._clock() - began
        if not reply.choices:
            raise _Transient(f"the inference server at {self.endpoint.url} returned no choices")
        choice = reply.choices[0]
        text = (choice.message.content or "").strip() if choice.message else ""
        usage = reply.usage
        return ServedGeneration(
            text=text,
            n_tokens=int(usage.completion_tokens) if usage and usage.completion_tokens is not None else 0,
            seconds=seconds,
            seed=int(seed),
            finish_reason=str(choice.finish_reason or "unknown"),
            served_model=reply.model or None,
            prompt_tokens=int(usage.prompt_tokens) if usage and usage.prompt_tokens is not None else None,
            server_seed=server_seed,
            attempts=attempt,
        )

    def _detail(self, exc) -> str:
        """The server's error text, one line, at most 200 characters, with the key masked."""
        body = getattr(exc, "body", None)
        text = None
        if isinstance(body, dict):
            inner = body.get("error", body)
            text = inner.get("message") or inner.get("detail") if isinstance(inner, dict) else str(inner)
            text = text or body.get("detail") or body.get("message")
        if not text:
            text = getattr(exc, "message", None) or str(exc)
        return self._clean(" ".join(str(text).split()))[:200]

    def _clean(self, text: str) -> str:
        if self._key and self._key != NO_KEY:
            text = text.replace(self._key, "***")
        return text

    def _classify(self, exc) -> Exception:
        status = exc.status_code
        url, model = self.endpoint.url, self.endpoint.request_model
        detail = self._detail(exc)
        if status in TRANSIENT_STATUS or status >= 500:
            return _Transient(f"the inference server at {url} answered {status}: {detail}", _retry_after(exc))
        if status in (401, 403):
            hint = f"check {self.endpoint.api_key_env}" if self.endpoint.api_key_env else "pass --api-key-env"
            return EndpointError(f"the inference server at {url} refused the request ({status}): {hint}")
        if status in (400, 413, 422) and _CONTEXT_TEXT.search(detail):
            return EndpointError(
                f"a prompt does not fit the context window of {model} at {url}: {detail}; "
                "lower --max-new-tokens or drop the long prompts"
            )
        if status == 404 or (status == 400 and model in detail):
            return EndpointError(
                f"the inference server at {url} does not serve model {model!r} ({status}: {detail}); "
                "check --served-model (see the server's /v1/models) and that the URL ends in /v1"
            )
        return EndpointError(f"the inference server at {url} refused the request ({status}): {detail}")

    # -- many requests -----------------------------------------------------------------------------

    def generate(
        self,
        chats: Sequence[list[dict]],
        params: SamplingParams | Sequence[SamplingParams],
        *,
        seeds: Sequence[int],
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_result: Callable[[int, ServedGeneration], None] | None = None,
    ) -> BatchOutcome:
        """One request per chat, `concurrency` at a time; stops sending on a permanent error or a stop.

        `on_result(i, generation)` runs on the calling thread as each response lands, so the caller can store
        it at once; what was sent before a failure still completes and is returned.
        """
        n = len(chats)
        per_row = [params] * n if isinstance(params, SamplingParams) else list(params)
        if len(per_row) != n or len(seeds) != n:
            raise EndpointError(f"{n} chats need {n} params and seeds, got {len(per_row)} and {len(seeds)}")
        outcome = BatchOutcome([None] * n)
        if n == 0:
            return outcome
        pending: dict[Future, int] = {}
        next_row = 0
        with ThreadPoolExecutor(max_workers=min(self.concurrency, n), thread_name_prefix="endpoint") as pool:
            while pending or next_row < n:
                while (
                    next_row < n
                    and len(pending) < self.concurrency
                    and outcome.error is None
                    and not should_stop()
                ):
                    i = next_row
                    pending[pool.submit(self.complete, chats[i], per_row[i], int(seeds[i]))] = i
                    next_row += 1
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = pending.pop(future)
                    try:
                        outcome.results[i] = future.result()
                    except EndpointError as exc:
                        outcome.error = outcome.error or exc
                        continue
                    if on_result is not None:
                        on_result(i, outcome.results[i])
                    if progress is not None:
                        progress(outcome.done, n)
        return outcome

    def close(self) -> None:
        self._client.close()


def _retry_after(exc) -> float | None:
    """Seconds from a Retry-After header (a number); None when absent or malformed."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def make_endpoint_model(endpoint: Endpoint, *, concurrency: int = DEFAULT_CONCURRENCY) -> EndpointModel:
    """The real client for an endpoint (the default factory of generation jobs)."""
    return EndpointModel(endpoint, concurrency=concurrency)
