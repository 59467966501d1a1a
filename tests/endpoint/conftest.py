"""A real OpenAI-compatible server for the session: `transformers serve` on the converted default model (CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

STARTUP_TIMEOUT = 240.0


@dataclass(frozen=True)
class RealServer:
    url: str  # the OpenAI base URL, .../v1
    served_model: str  # what `transformers serve MODEL_DIR` serves: the folder's path
    model_dir: Path
    log: Path


def _transformers_cli() -> list[str]:
    exe = Path(sys.executable).with_name("transformers")
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "from transformers.cli.transformers import main; main()"]


def _answers(url: str, model: str) -> bool:
    """A one-token chat completion: `/v1/models` needs an HF cache folder, so probe what the tests use."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1})
    request = urllib.request.Request(
        f"{url}/chat/completions", data=body.encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status == 200
    except (OSError, urllib.error.URLError):
        return False


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
    from tests.serving import free_port

    port = free_port()
    log_path = tmp_path_factory.mktemp("served") / f"transformers-serve-{port}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for secret in ("ANTHROPIC_API_KEY", "HF_TOKEN", "OPENAI_API_KEY"):
        env.pop(secret, None)
    model = str(converted_default_model)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                *_transformers_cli(),
                "serve",
                model,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--device",
                "cpu",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while not _answers(url, model):
            if proc.poll() is not None:
                pytest.fail(
                    f"transformers serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"transformers serve did not answer in {STARTUP_TIMEOUT:.0f} s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(1)
        yield RealServer(url, model, converted_default_model, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
