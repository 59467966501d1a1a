"""Start, probe and stop the local servers the benches and the tests run: `launch.py serve`, `transformers serve`.

One copy of the loop every one of them needs (start with output to a log, poll until it answers or exits, stop
it however the block ends), used by bench/annotators.py, bench/endpoint.py, bench/gpu_server.py,
tests/serving.py and tests/endpoint/conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Never handed to a server a bench or a test starts: the serving process needs none of them.
SECRETS = ("ANTHROPIC_API_KEY", "HF_TOKEN", "OPENAI_API_KEY")


def offline_defaults() -> None:
    """No Hub, no progress bars, no tokenizer threads, unless the caller's environment says otherwise."""
    for name, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("TQDM_DISABLE", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        os.environ.setdefault(name, value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without the secrets, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update(extra)
    return env


class ServerFailed(RuntimeError):
    """A server exited or did not answer in time; `str()` ends with the tail of its log, `short()` names the log."""

    def __init__(self, name: str, problem: str, log_path: Path):
        self.name, self.problem, self.log_path = name, problem, Path(log_path)
        try:
            tail = self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            tail = ""
        super().__init__(f"{name} {problem}:\n{tail}")

    def short(self) -> str:
        return f"{self.name} {self.problem} (log: {self.log_path})"


def stop(proc: subprocess.Popen, timeout: float = 20, *, group: bool = False) -> None:
    """SIGTERM (to its whole process group when `group`), then SIGKILL after `timeout` seconds."""

    def send(sig: int) -> None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass  # already gone

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout=timeout)


@contextmanager
def running(
    command: list[str],
    *,
    log_path: Path,
    ready: Callable[[], bool],
    timeout: float,
    name: str = "server",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    poll: float = 1.0,
    group: bool = False,
) -> Iterator[subprocess.Popen]:
    """Start `command` (output to `log_path`), yield it once `ready()` is true, stop it when the block ends.

    Raises ServerFailed when it exits first or `timeout` seconds pass; `group`: a session of its own, stopped as a
    whole (a server that starts workers of its own, such as vLLM).
    """
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=group
        )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                raise ServerFailed(name, f"exited with {proc.returncode}", log_path)
            if time.monotonic() > deadline:
                raise ServerFailed(name, f"did not answer in {timeout:.0f} s", log_path)
            time.sleep(poll)
        yield proc
    finally:
        stop(proc, group=group)


def page_answers(url: str) -> bool:
    """The page loads; a 401 from `--auth` counts, the server is up."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False


def chat_answers(url: str, model: str) -> bool:
    """A one-token chat completion: `/v1/models` needs an HF cache folder, so probe what the clients use."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1})
    request = urllib.request.Request(
        f"{url}/chat/completions", data=body.encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status == 200
    except OSError:
        return False


def transformers_serve_command(
    model_dir: str, port: int, device: str = "cpu", dtype: str | None = None
) -> list[str]:
    """`transformers serve MODEL_DIR` on a loopback port, through this interpreter's transformers."""
    exe = Path(sys.executable).with_name("transformers")
    cli = (
        [str(exe)]
        if exe.is_file()
        else [sys.executable, "-c", "from transformers.cli.transformers import main; main()"]
    )
    command = [*cli, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", device]
    return command + (["--dtype", dtype] if dtype else [])


@contextmanager
def transformers_serve(
    model_dir: Path, log_path: Path, *, port: int = 0, timeout: float = 300
) -> Iterator[str]:
    """`transformers serve MODEL_DIR` on the CPU; yields its /v1 URL once a chat completion answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with running(
        transformers_serve_command(str(model_dir), port),
        log_path=log_path,
        ready=lambda: chat_answers(url, str(model_dir)),
        timeout=timeout,
        name="transformers serve",
        env=child_env(HF_HUB_OFFLINE="1", TQDM_DISABLE="1", TOKENIZERS_PARALLELISM="false"),
    ):
        yield url


@contextmanager
def launch_serve(
    home: Path, log_dir: Path, *extra: str, timeout: float = 120, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`launch.py --home HOME serve` on a free loopback port (log: LOG_DIR/serve-PORT.log); yields (url, process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [
        sys.executable,
        str(ROOT / "launch.py"),
        "--home",
        str(home),
        "serve",
        "--port",
        str(port),
        *extra,
    ]
    with running(
        command,
        log_path=Path(log_dir) / f"serve-{port}.log",
        ready=lambda: page_answers(url),
        timeout=timeout,
        env=env,
        cwd=ROOT,
        poll=0.3,
    ) as proc:
        yield url, proc
