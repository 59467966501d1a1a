"""The arms of bench/annotators.py: simulated annotators voting through gradio_client, and the no-op baseline.

Each annotator is its own `gradio_client.Client` (its own session and name) calling the `api_name`s the buttons
use; the baseline calls an event whose handler returns at once through the same queue and client.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PAIR_RE = re.compile(r"pair #(\d+)")
SIDES = ("a", "b", "tie", "both_bad")
SIDE_WEIGHTS = (0.4, 0.4, 0.1, 0.1)
CALL_TIMEOUT_S = 30.0
# An arena vote without a battle: its handler returns at once; same concurrency limit (16) as the vote events.
NOOP_API = "/arena_vote_left"


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


@dataclass
class Phase:
    """What one phase measured, client side."""

    name: str
    annotators: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # vote -> next pair, seconds
    baseline: list[float] = field(default_factory=list)  # no-op event, seconds
    baseline_rejected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    acked: list[tuple[str, int]] = field(default_factory=list)  # (annotator, pair voted on)
    shown: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    exhausted: int = 0
    server_cpu: float = float("nan")  # the serving process's CPU seconds per wall second while voting
    lock: threading.Lock = field(default_factory=threading.Lock)


def _pair_of(result) -> int | None:
    match = PAIR_RE.search(str(result[0])) if isinstance(result, tuple | list) and result else None
    return int(match.group(1)) if match else None


def call(c, *args, api_name: str):
    return c.submit(*args, api_name=api_name).result(timeout=CALL_TIMEOUT_S)


def annotator_loop(
    url: str, name: str, seconds: float, phase: Phase, start: threading.Barrier, seed: int
) -> None:
    """One annotator: load the page's first pair, then vote until the phase ends."""
    rng = random.Random(seed)
    try:
        c = client(url)
        current = _pair_of(call(c, name, False, api_name="/next_pair"))
    except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the bench
        with phase.lock:
            phase.errors.append(f"{name} load: {type(exc).__name__}: {str(exc)[:120]}")
        start.abort()
        return
    if current is not None:
        with phase.lock:
            phase.shown[current].add(name)
    try:
        start.wait(timeout=120)
    except threading.BrokenBarrierError:
        return
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and current is not None:
            side = rng.choices(SIDES, SIDE_WEIGHTS)[0]
            began = time.perf_counter()
            try:
                result = call(c, name, False, "", "", api_name=f"/vote_{side}")
            except Exception as exc:  # noqa: BLE001
                with phase.lock:
                    phase.errors.append(f"{name} vote: {type(exc).__name__}: {str(exc)[:120]}")
                # The server's state is unknown after an error: ask for the pair it holds for us.
                current = _pair_of(call(c, name, False, api_name="/next_pair"))
                continue
            took = time.perf_counter() - began
            nxt = _pair_of(result)
            with phase.lock:
                phase.latencies.append(took)
                phase.acked.append((name, current))
                if nxt is None:
                    phase.exhausted += 1
                elif nxt == current:
                    phase.errors.append(f"{name}: pair #{current} shown again after the vote")
                else:
                    phase.shown[nxt].add(name)
            current = nxt
    finally:
        c.close()


def noop_loop(url: str, seconds: float, out: list[float], failed: list[str], lock: threading.Lock) -> None:
    """The baseline: an event whose handler returns at once, through the same queue, client and concurrency."""
    from gradio_client.exceptions import AppError

    c = client(url)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                call(c, "noop", api_name=NOOP_API)
            except AppError as exc:
                # Gradio 6 rejects the handler's empty dict after it returned (see bench/README.md); the round
                # trip is complete all the same, so it still times the queue. Counted apart from the errors.
                with lock:
                    failed.append(str(exc)[:80])
            except Exception as exc:  # noqa: BLE001
                with lock:
                    failed.append(f"{type(exc).__name__}: {str(exc)[:80]}")
                continue
            with lock:
                out.append(time.perf_counter() - began)
    finally:
        c.close()


def run_threads(targets: list[tuple], join_timeout: float) -> None:
    threads = [threading.Thread(target=fn, args=args, daemon=True) for fn, *args in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(join_timeout)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, pid: int, phase: Phase, seconds: float, baseline_seconds: float) -> None:
    """The no-op baseline with N concurrent clients, then N annotators voting for `seconds`."""
    lock = threading.Lock()
    run_threads(
        [
            (noop_loop, url, baseline_seconds, phase.baseline, phase.baseline_rejected, lock)
            for _ in range(phase.annotators)
        ],
        baseline_seconds + CALL_TIMEOUT_S + 30,
    )
    start = threading.Barrier(phase.annotators)
    began, cpu = time.monotonic(), cpu_seconds(pid)
    run_threads(
        [
            (annotator_loop, url, f"{phase.name}-{i}", seconds, phase, start, 1000 * i + len(phase.name))
            for i in range(phase.annotators)
        ],
        seconds + 2 * CALL_TIMEOUT_S + 150,
    )
    phase.seconds = time.monotonic() - began
    phase.server_cpu = (cpu_seconds(pid) - cpu) / phase.seconds
