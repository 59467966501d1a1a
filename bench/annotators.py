"""Concurrent annotators against a real `launch.py serve`: vote -> next-pair latency, errors, duplicates, lost votes.

    python -m bench.annotators --annotators 8 --seconds 20 --pairs 400 [--results bench/RESULTS.md]

Seeds a fresh home with pairs, lets the app's own rule judge prepare every suggestion (`launch.py judge --judge
rule`), starts `launch.py serve` on a free loopback port and drives N simulated annotators, each with its own
gradio_client session and name, through the `api_name`s the buttons use (`/next_pair`, `/vote_a`, `/vote_b`,
`/vote_tie`, `/vote_both_bad`). Per phase it reports p50/p99 of vote -> next pair, against a baseline measured
in the same run: a no-op event (`/arena_vote_left` without a battle returns at once) through the same queue with
the same concurrency, so the ratio is what PrefLab adds over Gradio's queue and the client.

Phases: `idle`, then `generating`: a real generation job started through `/generate` (the button's event) runs
inside the serving process with the default model (SmolLM2-135M, converted once into --model-cache), so
request threads compete with the model for the CPUs as they do when a user labels while pairs are generated.
After the server stops, the database is opened to check every acknowledged vote against the stored labels.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAIR_RE = re.compile(r"pair #(\d+)")
SIDES = ("a", "b", "tie", "both_bad")
SIDE_WEIGHTS = (0.4, 0.4, 0.1, 0.1)
CALL_TIMEOUT_S = 30.0
TARGET_P99_MS = 150.0
# An arena vote without a battle: its handler returns at once; same concurrency limit (16) as the vote events.
NOOP_API = "/arena_vote_left"


# -- set-up ------------------------------------------------------------------------------------


def seed_home(home: Path, n_pairs: int) -> None:
    """n_pairs prompts (train split, with gold) and one pair each, written straight into the store."""
    from store import Store

    home.mkdir(parents=True, exist_ok=True)
    with Store.open(home / "preflab.duckdb") as store:
        writer = store.ensure_model("bench-writer", "none", [], "sft")
        for i in range(n_pairs):
            sev = f"SEV{i % 4 + 1}"
            pid = store.add_prompt(
                [
                    {
                        "role": "user",
                        "content": f"Incident {i}: checkout latency is up {i % 7 + 2}x since deploy {i}.",
                    }
                ],
                "bench",
                "train",
                gold={"severity": sev, "answer": f"Severity: {sev}"},
            )
            good = (
                f"Severity: {sev}\nSummary: Incident {i} slowed checkout after a deploy.\n"
                "Next steps:\n- Roll back the deploy.\n- Page the on-call engineer."
            )
            bad = f"Looks bad, maybe {sev}? Not sure what to do about incident {i}."
            a, b = (good, bad) if i % 2 else (bad, good)
            ga = store.add_generation(pid, writer.id, a, seed=i)
            gb = store.add_generation(pid, writer.id, b, seed=i + 1)
            store.add_pair(pid, ga, gb)


def server_env() -> dict[str, str]:
    """The serving process's environment: the rule judge (no API key), no analytics, no Hub."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "HF_TOKEN")}
    env.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def cli(home: Path, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=server_env(),
    )
    if proc.returncode != 0:
        raise SystemExit(f"launch.py {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def cached_default_model(cache: Path) -> Path:
    """The default model as a safetensors folder, converted from the shipped GGUF once (about 35 s)."""
    code = "import sys; from models.gguf_cache import ensure_default_cache; print(ensure_default_cache(sys.argv[1]))"
    out = subprocess.run(
        [sys.executable, "-c", code, str(cache)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=server_env(),
    )
    if out.returncode != 0:
        raise SystemExit(f"could not prepare the default model: {out.stderr.strip().splitlines()[-1:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(home: Path, log_path: Path, startup_timeout: float = 180):
    """`launch.py serve` on a free loopback port; yields (url, process)."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "launch.py"), "--home", str(home), "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=server_env(),
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"server did not start in {startup_timeout} s; see {log_path}") from None
                time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


# -- driving -----------------------------------------------------------------------------------


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


def _call(c, *args, api_name: str):
    return c.submit(*args, api_name=api_name).result(timeout=CALL_TIMEOUT_S)


def annotator_loop(
    url: str, name: str, seconds: float, phase: Phase, start: threading.Barrier, seed: int
) -> None:
    """One annotator: load the page's first pair, then vote until the phase ends."""
    rng = random.Random(seed)
    try:
        c = client(url)
        current = _pair_of(_call(c, name, False, api_name="/next_pair"))
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
                result = _call(c, name, False, "", "", api_name=f"/vote_{side}")
            except Exception as exc:  # noqa: BLE001
                with phase.lock:
                    phase.errors.append(f"{name} vote: {type(exc).__name__}: {str(exc)[:120]}")
                # The server's state is unknown after an error: ask for the pair it holds for us.
                current = _pair_of(_call(c, name, False, api_name="/next_pair"))
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
                _call(c, "noop", api_name=NOOP_API)
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


# -- checking ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) in milliseconds; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def check_store(home: Path, phases: list[Phase]) -> dict[str, dict]:
    """Per phase: acknowledged votes without a stored label (lost), doubled labels, pairs labelled twice."""
    from store import Store

    out = {}
    with Store.open(home / "preflab.duckdb", read_only=True) as store:
        cur = store.cursor()
        for ph in phases:
            rows = cur.execute(
                "SELECT annotator, pair_id, count(*) FROM labels WHERE source = 'human' "
                "AND superseded_by IS NULL AND annotator LIKE ? GROUP BY 1, 2",
                [f"{ph.name}-%"],
            ).fetchall()
            stored = {(a, int(p)): int(n) for a, p, n in rows}
            acked = set(ph.acked)
            by_pair = defaultdict(set)
            for a, p in stored:
                by_pair[p].add(a)
            out[ph.name] = {
                "stored": sum(stored.values()),
                "lost": len(acked - set(stored)),
                "unacknowledged": len(set(stored) - acked),
                "doubled": sum(1 for n in stored.values() if n > 1),
                "pairs_two_annotators": sum(1 for a in by_pair.values() if len(a) > 1),
            }
        span = cur.execute(
            "SELECT min(l.created_at), max(l.created_at) FROM labels l WHERE l.annotator LIKE 'generating-%'"
        ).fetchone()
        sft = store.get_model("sft")
        if sft is not None and span[0] is not None:
            during, total = cur.execute(
                "SELECT count(*) FILTER (WHERE created_at BETWEEN ? AND ?), count(*) FROM generations "
                "WHERE model_id = ?",
                [span[0], span[1], sft.id],
            ).fetchone()
            job = store.latest_job("generate")
            out["generation"] = {
                "during": int(during),
                "total": int(total),
                "job": None if job is None else f"#{job.id} {job.status}",
            }
    return out


def handler_profile(home: Path, votes: int = 40) -> dict[str, float]:
    """The vote handler's work without HTTP, in this process, once the server has stopped: p50 ms of its parts."""
    from annotate.service import AnnotateService
    from context import AppConfig, build_context
    from models.judge import RuleJudge

    ctx = build_context(AppConfig(home=home), judge=RuleJudge())
    try:
        svc = AnnotateService(ctx)
        screen = svc.current("in-process")
        vote, counts = [], []
        for _ in range(votes):
            if screen is None:
                break
            t0 = time.perf_counter()
            nxt = svc.vote("in-process", screen.pair_id, "A", suggestion_shown=True, seconds_spent=1.0)
            t1 = time.perf_counter()
            svc.counts()  # what the tab's show() adds to every vote
            vote.append(t1 - t0)
            counts.append(time.perf_counter() - t1)
            screen = nxt
    finally:
        ctx.store.close()
    return {"vote": pct(vote, 0.5), "counts": pct(counts, 0.5), "n": len(vote)}


# -- report ------------------------------------------------------------------------------------


def table(phases: list[Phase], stored: dict[str, dict]) -> str:
    head = (
        "| phase | annotators | votes | votes/s | p50 ms | p99 ms | max ms | no-op p50 / p99 ms | "
        "p99 / no-op p99 | server CPU | errors | pairs shown to 2+ | pairs labelled by 2+ | acknowledged | stored | "
        "lost |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for ph in phases:
        s = stored.get(ph.name, {})
        shown_twice = sum(1 for names in ph.shown.values() if len(names) > 1)
        p99, base99 = pct(ph.latencies, 0.99), pct(ph.baseline, 0.99)
        lines.append(
            f"| {ph.name} | {ph.annotators} | {len(ph.latencies)} | {len(ph.latencies) / max(ph.seconds, 1e-9):.1f} | "
            f"{pct(ph.latencies, 0.5):.0f} | {p99:.0f} | {max(ph.latencies, default=0) * 1000:.0f} | "
            f"{pct(ph.baseline, 0.5):.0f} / {base99:.0f} | {p99 / base99:.1f}x | {ph.server_cpu:.0%} | "
            f"{len(ph.errors)} | {shown_twice} | "
            f"{s.get('pairs_two_annotators', '?')} | {len(ph.acked)} | {s.get('stored', '?')} | "
            f"{s.get('lost', '?')} (+{s.get('doubled', '?')} doubled) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    load_before = os.getloadavg()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotators", type=int, default=8, help="concurrent simulated annotators (default 8)")
    ap.add_argument("--seconds", type=float, default=20, help="voting time per phase (default 20)")
    ap.add_argument(
        "--pairs",
        type=int,
        default=1200,
        help="pairs seeded (default 1200: more than 2 phases of 8 can label)",
    )
    ap.add_argument(
        "--baseline-seconds", type=float, default=5, help="no-op baseline time per phase (default 5)"
    )
    ap.add_argument("--no-generation", action="store_true", help="skip the phase with a generation job")
    ap.add_argument(
        "--gen-warmup",
        type=float,
        default=15,
        help="seconds between starting the generation job and measuring (model load; default 15)",
    )
    ap.add_argument(
        "--model-cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "preflab" / "bench-models",
        help="where the default model is converted once (default ~/.cache/preflab/bench-models)",
    )
    ap.add_argument("--results", type=Path, help="append the table and the command to this markdown file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home (its path is printed)")
    args = ap.parse_args(argv)
    if args.annotators < 1 or args.seconds <= 0 or args.pairs < 1:
        ap.error("--annotators, --seconds and --pairs must be positive")

    work = Path(tempfile.mkdtemp(prefix="preflab-bench-annotators-"))
    home = work / "home"
    try:
        t0 = time.monotonic()
        seed_home(home, args.pairs)
        judged = cli(home, "judge", "--judge", "rule")
        if not args.no_generation:
            model_dir = cached_default_model(args.model_cache)
            cli(home, "models", "add", "sft", "--base", str(model_dir), "--kind", "sft")
        print(f"set-up {time.monotonic() - t0:.1f} s: {args.pairs} pairs; {judged}", flush=True)

        phases = [Phase("idle", args.annotators)]
        with serve(home, work / "serve.log") as (url, proc):
            measure(url, proc.pid, phases[0], args.seconds, args.baseline_seconds)
            print(f"idle: {len(phases[0].latencies)} votes", flush=True)
            if not args.no_generation:
                starter = client(url)
                status = _call(starter, api_name="/generate")
                starter.close()
                print(f"generation: {status}", flush=True)
                time.sleep(args.gen_warmup)
                phases.append(Phase("generating", args.annotators))
                measure(url, proc.pid, phases[1], args.seconds, args.baseline_seconds)
                print(f"generating: {len(phases[1].latencies)} votes", flush=True)
        stored = check_store(home, phases)
        handler = handler_profile(home)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    report = table(phases, stored)
    gen = stored.get("generation")
    notes = [
        f"- cores: {os.cpu_count()}, load average (1/5/15 min) at start: {', '.join(f'{x:.1f}' for x in load_before)}"
        " (the annotator clients run on the same machine as the server)",
        f"- target: p99 < {TARGET_P99_MS:.0f} ms idle, 0 errors, 0 duplicate assignments, 0 lost votes",
    ]
    notes.append(
        f"- the handler alone (in-process, no HTTP, after the server stopped; {handler['n']} votes): "
        f"LabelService.vote p50 {handler['vote']:.0f} ms + store.counts() p50 {handler['counts']:.0f} ms "
        "(the tab needs the counts only for its empty state, not on a vote that shows a pair)"
    )
    if gen:
        notes.append(
            f"- generating: job {gen['job']} (the default model, in the serving process) wrote {gen['during']} "
            f"responses while the annotators voted, {gen['total']} in all; server CPU shows the load"
        )
    for ph in phases:
        if ph.baseline_rejected:
            notes.append(
                f"- {ph.name}: {len(ph.baseline_rejected)} of {len(ph.baseline)} no-op calls came back as an "
                f"AppError after the handler returned (Gradio rejects an empty dict return; timed all the same)"
            )
        if ph.exhausted:
            notes.append(f"- {ph.name}: {ph.exhausted} votes found the queue empty (raise --pairs)")
        for err in ph.errors[:3]:
            notes.append(f"- {ph.name} error: {err}")
    print()
    print(report)
    print("\n".join(notes))
    if args.results:
        command = "python -m bench.annotators " + " ".join(sys.argv[1:] if argv is None else argv)
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        section = f"\n### annotators, {when}\n\n`{command}`\n\n{report}\n\n" + "\n".join(notes) + "\n"
        with open(args.results, "a", encoding="utf-8") as fh:
            fh.write(section)
        print(f"appended to {args.results}")
    idle = phases[0]
    ok = (
        pct(idle.latencies, 0.99) < TARGET_P99_MS
        and not any(ph.errors for ph in phases)
        and all(
            stored[ph.name]["lost"] == 0
            and stored[ph.name]["pairs_two_annotators"] == 0
            and not any(len(names) > 1 for names in ph.shown.values())
            for ph in phases
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
