"""Where a variant is served: the validated settings of an OpenAI-compatible endpoint.

Everything here is checked before it is stored: the URL (no credentials, query or fragment), the served model id,
LoRA module and revision, and the name of the environment variable that holds the key (allow-listed, so a key
for another service never travels to an arbitrary URL). The client that talks to the server is models/endpoint.py.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field

from common.errors import ModelError

# The key placeholder when no variable is named: the SDK would otherwise send $OPENAI_API_KEY to any URL.
NO_KEY = "EMPTY"

API_KEY_ENV_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
API_KEY_ENV_EXACT = frozenset({"OPENAI_API_KEY", "VLLM_API_KEY"})
# Credentials for other services must never travel to an arbitrary URL, whatever their name ends with.
API_KEY_ENV_FORBIDDEN = ("ANTHROPIC", "CLAUDE", "HF", "HUGGING", "AWS", "GITHUB", "PREFLAB")
_IDENTIFIER = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")


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
