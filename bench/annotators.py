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
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report as fmt  # noqa: E402 - after the path, so `python bench/annotators.py` works too
from bench.annotators_drive import Phase, call, client, measure  # noqa: E402
from bench.servers import ServerFailed, launch_serve  # noqa: E402

TARGET_P99_MS = 150.0

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
    from common.context import AppConfig, build_context
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
    return {"vote": fmt.pct(vote, 0.5), "counts": fmt.pct(counts, 0.5), "n": len(vote)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "preflab" / "bench-models"
    for flag, kind, default, text in (
        ("--annotators", int, 8, "concurrent simulated annotators (default 8)"),
        ("--seconds", float, 20, "voting time per phase (default 20)"),
        ("--pairs", int, 1200, "pairs seeded (default 1200: more than 2 phases of 8 can label)"),
        ("--baseline-seconds", float, 5, "no-op baseline time per phase (default 5)"),
        ("--gen-warmup", float, 15, "seconds between starting the generation job and measuring (model load; default 15)"),
        ("--model-cache", Path, cache, "where the default model is converted once (default ~/.cache/preflab/bench-models)"),
        ("--results", Path, None, "append the table and the command to this markdown file"),
    ):  # fmt: skip
        ap.add_argument(flag, type=kind, default=default, help=text)
    ap.add_argument("--no-generation", action="store_true", help="skip the phase with a generation job")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home (its path is printed)")
    args = ap.parse_args(argv)
    if args.annotators < 1 or args.seconds <= 0 or args.pairs < 1:
        ap.error("--annotators, --seconds and --pairs must be positive")
    return args


def run_phases(args, home: Path, work: Path) -> list[Phase]:
    """The idle phase, then (unless --no-generation) the phase with a generation job, on one server."""
    phases = [Phase("idle", args.annotators)]
    try:
        with launch_serve(home, work, timeout=180, env=server_env()) as (url, proc):
            measure(url, proc.pid, phases[0], args.seconds, args.baseline_seconds)
            print(f"idle: {len(phases[0].latencies)} votes", flush=True)
            if not args.no_generation:
                starter = client(url)
                status = call(starter, api_name="/generate")
                starter.close()
                print(f"generation: {status}", flush=True)
                time.sleep(args.gen_warmup)
                phases.append(Phase("generating", args.annotators))
                measure(url, proc.pid, phases[1], args.seconds, args.baseline_seconds)
                print(f"generating: {len(phases[1].latencies)} votes", flush=True)
    except ServerFailed as exc:
        raise SystemExit(str(exc)) from None
    return phases


def main(argv: list[str] | None = None) -> int:
    load_before = os.getloadavg()
    args = parse_args(argv)
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
        phases = run_phases(args, home, work)
        stored = check_store(home, phases)
        handler = handler_profile(home)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    report = fmt.annotators_table(phases, stored)
    notes = fmt.annotators_notes(phases, stored, handler, load_before, TARGET_P99_MS)
    print()
    print(report)
    print("\n".join(notes))
    if args.results:
        command = "python -m bench.annotators " + " ".join(sys.argv[1:] if argv is None else argv)
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        fmt.append(
            args.results, f"\n### annotators, {when}\n\n`{command}`\n\n{report}\n\n" + "\n".join(notes) + "\n"
        )
        print(f"appended to {args.results}")
    idle = phases[0]
    ok = (
        fmt.pct(idle.latencies, 0.99) < TARGET_P99_MS
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
