"""OpenAI-compatible inference servers: validated endpoint settings and a client that generates cell by cell.

vLLM, SGLang, TGI, llama.cpp's server, Ollama and `transformers serve` all speak the chat completions API. Each
response is its own request (never `n`: several servers ignore it), with its own seed, so a job stores and
resumes cell by cell. The SDK's retries are off: the backoff here has an injectable sleep and decides what is
transient, so a test can see every attempt. The API key is read from an allow-listed environment variable at
client build time and never stored, logged or put in a message.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from errors import ModelError
from models.sampling import Generation, SamplingParams

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
# The key placeholder when no variable is named: the SDK would otherwise send $OPENAI_API_KEY to any URL.
NO_KEY = "EMPTY"

API_KEY_ENV_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
API_KEY_ENV_EXACT = frozenset({"OPENAI_API_KEY", "VLLM_API_KEY"})
# Credentials for other services must never travel to an arbitrary URL, whatever their name ends with.
API_KEY_ENV_FORBIDDEN = ("ANTHROPIC", "CLAUDE", "HF", "HUGGING", "AWS", "GITHUB", "PREFLAB")
_IDENTIFIER = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")
_CONTEXT_TEXT = re.compile(
    r"context.length|context.window|maximum context|max_model_len|model_max_length|too many tokens|"
    r"prompt is too long|exceeds? the (?:model|max)|input.{0,20}too long",
    re.IGNORECASE,
)


class EndpointError(ModelError):
    """An inference server cannot be used as registered (down, model not served, prompt too long, ...)."""


def check_api_key_env(name: str) -> str:
    """The variable name when it is allow-listed; else a one-line EndpointError."""
    if not isinstance(name, str) or not API_KEY_ENV_PATTERN.match(name):
        raise EndpointError(
            "--api-key-env must be an environment variable name of capitals, digits and _ "
            "(at most 64), e.g. VLLM_API_KEY"
        )
    if any(bad in name for bad in API_KEY_ENV_FORBIDDEN):
        raise EndpointError(
            f"--api-key-env {name} is refused: keys for Anthropic, the Hugging Face Hub or other services "
            "are never sent to an inference server; use a variable of its own, e.g. VLLM_API_KEY"
        )
    if not (name.endswith("_API_KEY") or name in API_KEY_ENV_EXACT):
        raise EndpointError(f"--api-key-env must end with _API_KEY (e.g. VLLM_API_KEY), got {name}")
    return name


def normalize_url(url: str) -> str:
    """An http(s) base URL without credentials, query or trailing slash; a bare host gets `/v1`."""
    if not isinstance(url, str) or not url.strip() or len(url) > 2048 or not _IDENTIFIER.match(url.strip()):
        raise EndpointError("--endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError("--endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1")
    if parts.username or parts.password:
        # The URL is stored in the database: a password in it would be a stored secret.
        raise EndpointError("--endpoint must not contain a user or password; pass the key with --api-key-env")
    if parts.query or parts.fragment:
        raise EndpointError("--endpoint must not have a query or fragment (keys go in --api-key-env)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise EndpointError("--endpoint has an invalid port") from exc
    path = parts.path.rstrip("/") or "/v1"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def check_identifier(flag: str, value: str) -> str:
    """A served model id, LoRA module name or revision: 1-256 characters, no spaces or control characters."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise EndpointError(f"{flag} must be 1 to 256 characters without spaces, got {value!r:.80}")
    return value


@dataclass(frozen=True)
class Endpoint:
    """Where a variant is served: the server's base URL and the model id to ask it for."""

    url: str = field(metadata={"help": "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"})
    served_model: str = field(metadata={"help": "the model id the server serves (see its /v1/models)"})
    api_key_env: str | None = field(
        default=None, metadata={"help": "environment variable holding the key (allow-listed names only)"}
    )
    revision: str | None = field(default=None, metadata={"help": "what the served weights are, recorded"})
    lora_module: str | None = field(
        default=None, metadata={"help": "LoRA module name on the server; sent as the request's model"}
    )

    def __post_init__(self):
        object.__setattr__(self, "url", normalize_url(self.url))
        check_identifier("--served-model", self.served_model)
        if self.api_key_env is not None:
            check_api_key_env(self.api_key_env)
        if self.revision is not None:
            check_identifier("--revision", self.revision)
        if self.lora_module is not None:
            check_identifier("--lora-module", self.lora_module)

    @property
    def request_model(self) -> str:
        """The `model` of each request: the LoRA module when one is named (vLLM's way), else the served id."""
        return self.lora_module or self.served_model

    @property
    def identity(self) -> str:
        """What stands in for a weights fingerprint: the served id, its revision and LoRA module."""
        text = f"served:{self.served_model}"
        if self.revision:
            text += f"@{self.revision}"
        if self.lora_module:
            text += f"+lora:{self.lora_module}"
        return text

    def api_key(self) -> str:
        """The key from the named variable; a placeholder when none is named (nothing read from the env)."""
        if self.api_key_env is None:
            return NO_KEY
        key = os.environ.get(self.api_key_env)
        if not key:
            raise EndpointError(f"the endpoint {self.url} needs a key: set the {self.api_key_env} variable")
        return key


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
