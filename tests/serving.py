"""Start `launch.py serve` as a real subprocess on a free loopback port, for CLI and browser tests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from bench.servers import ROOT, free_port, launch_serve

__all__ = ["ROOT", "TEST_SECRET", "free_port", "pin_test_secret", "run_cli", "serving"]


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
    home.mkdir(parents=True, exist_ok=True)
    pin_test_secret(home)
    with launch_serve(home, home.parent, *extra, timeout=startup_timeout) as (url, proc):
        yield url, proc
