"""Start `launch.py serve` as a real subprocess on a free loopback port, for CLI and browser tests."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(
    *args: str, home: Path, timeout: float = 120, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run `python launch.py --home HOME ARGS...` and capture its output."""
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


# A fixed install secret for served test homes, so screen orders and hidden-suggestion draws are the same on every
# run (a fresh random secret would hide the suggestion of any given pair 10% of the time). Under it no pair among the
# first 20 is drawn hidden, and both screen orders occur among the first 12 (tests rely on both).
TEST_SECRET = hashlib.sha256(b"preflab tests 0").digest()


def pin_test_secret(home: Path) -> None:
    """Give a test home the fixed secret unless it already has one."""
    path = home / "install.secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_bytes(TEST_SECRET)
        path.chmod(0o600)


@contextmanager
def serving(home: Path, *extra: str, startup_timeout: float = 120):
    """Yield (url, process) for a running server over `home` (with the fixed test secret); stop it afterwards."""
    port = free_port()
    log_path = home.parent / f"serve-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    pin_test_secret(home)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "launch.py"),
                "--home",
                str(home),
                "serve",
                "--port",
                str(port),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError as exc:  # 401 from --auth still means it is up
                if getattr(exc, "code", None) == 401:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{log_path.read_text()}") from exc
                time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
