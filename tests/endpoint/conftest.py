"""A real OpenAI-compatible server for the session: `transformers serve` on the converted default model (CPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.servers import ServerFailed, transformers_serve

os.environ["HF_HUB_OFFLINE"] = "1"

STARTUP_TIMEOUT = 240.0


@dataclass(frozen=True)
class RealServer:
    url: str  # the OpenAI base URL, .../v1
    served_model: str  # what `transformers serve MODEL_DIR` serves: the folder's path
    model_dir: Path
    log: Path


@pytest.fixture(scope="session")
def converted_default_model(tmp_path_factory) -> Path:
    """The shipped SmolLM2 GGUF converted once to a safetensors folder, as `models/gguf_cache.py` does for a home.

    PREFLAB_TEST_MODELS_DIR names a models cache to reuse across sessions (the conversion takes about 40 s).
    """
    from models.gguf_cache import ensure_default_cache

    cache = os.environ.get("PREFLAB_TEST_MODELS_DIR") or tmp_path_factory.mktemp("served-models")
    return ensure_default_cache(cache)


@pytest.fixture(scope="session")
def real_server(tmp_path_factory, converted_default_model) -> RealServer:
    """`transformers serve MODEL_DIR` on a free loopback port, up until a chat completion answers."""
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.fail("`transformers serve` needs fastapi, uvicorn, pydantic and openai: pip install -e .")
    log_path = tmp_path_factory.mktemp("served") / "transformers-serve.log"
    try:
        with transformers_serve(converted_default_model, log_path, timeout=STARTUP_TIMEOUT) as url:
            yield RealServer(url, str(converted_default_model), converted_default_model, log_path)
    except ServerFailed as exc:
        pytest.fail(str(exc))
