"""Where an inference server serves a variant: the five serving fields a user registers and the store keeps.

One value for the `models add` flags, the Models form, `register_variant` and the `models` table's columns (the
fields are the column names), so the five fields are spelled out once. It lives in common/ because store/ may not
import annotate/.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from common.flags import setting


@dataclass(frozen=True)
class Serving:
    """An OpenAI-compatible server that generates for a variant; all None for a variant that runs here."""

    endpoint: str | None = setting(None, "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    served_model: str | None = setting(None, "the model id the server serves (its /v1/models)")
    api_key_env: str | None = setting(
        None,
        "environment variable that holds the server's key (a name ending in _API_KEY; never HF or "
        "Anthropic keys); the key itself is never stored",
    )
    lora_module: str | None = setting(None, "LoRA module name on the server (vLLM --lora-modules)")
    revision: str | None = setting(
        None, "what the served weights are (a commit, a tag), recorded with responses"
    )

    @classmethod
    def of(cls, row) -> Serving:
        """The serving fields of a stored variant (a `ModelRow`: its columns have these names)."""
        return cls(**{f.name: getattr(row, f.name, None) for f in dataclasses.fields(cls)})

    def stripped(self) -> Serving:
        """The same fields with surrounding blanks removed; blank or non-text values become None."""
        return Serving(**{name: _text(value) for name, value in self.columns().items()})

    def columns(self) -> dict[str, str | None]:
        """The fields by name, which are also the `models` table's column names."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def extras(self) -> bool:
        """Whether any field besides the endpoint is set (they mean nothing without one)."""
        return any(value for name, value in self.columns().items() if name != "endpoint")


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
