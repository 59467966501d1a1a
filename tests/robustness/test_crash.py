"""SIGKILL mid-work: acknowledged votes survive once, the schema holds, jobs and runs resume or are marked."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.seed import seed_pairs
from tests.serving import serving
from tests.train.dpo_fixtures import tiny_sft  # noqa: F401 - the session fixture, used via getfixturevalue

PAIR_RE = re.compile(r"pair #(\d+)")
CHILD = Path(__file__).with_name("gen_child.py")


def client(url):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


def pair_of(screen) -> int | None:
    match = PAIR_RE.search(str(screen[0])) if screen else None
    return int(match.group(1)) if match else None


def check_schema(store) -> None:
    """Every shipped migration applied (Store.open already verified their checksums), every table readable."""
    from store.migrate import MIGRATIONS_DIR

    shipped = sorted(int(p.name[:4]) for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    assert [v for v, _ in store.applied_migrations()] == shipped
    for table in store.tables():
        store.cursor().execute(f"SELECT count(*) FROM {table}").fetchone()
    assert store.counts()["pairs"] > 0


def test_sigkill_mid_labelling_keeps_every_acknowledged_vote_once(tmp_path):
    home = tmp_path / "home"
    seed_pairs(home, 80)
    names = [f"rater{i}" for i in range(4)]
    acked: list[tuple[str, int]] = []  # (annotator, pair) the client saw acknowledged
    sent: list[tuple[str, int]] = []
    lock, stop = threading.Lock(), threading.Event()

    def annotator(url: str, name: str) -> None:
        c = client(url)
        try:
            current = pair_of(c.predict(name, False, api_name="/next_pair"))
            while current is not None and not stop.is_set():
                with lock:
                    sent.append((name, current))
                try:
                    screen = c.submit(name, False, f"note by {name}", "", api_name="/vote_a").result(
                        timeout=30
                    )
                except Exception:  # the server died under this vote: it is in flight, not acknowledged
                    return
                with lock:
                    acked.append((name, current))
                current = pair_of(screen)
        finally:
            c.close()

    with serving(home) as (url, proc):
        threads = [threading.Thread(target=annotator, args=(url, n), daemon=True) for n in names]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 90
        while len(acked) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # votes keep streaming in: several are in flight now
        proc.wait(timeout=30)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
    assert len(acked) >= 12, "the votes did not get going"
    in_flight = set(sent) - set(acked)
    assert in_flight, "the kill should land while votes are in flight"

    # Restart on the same database: each annotator goes on labelling.
    with serving(home) as (url, _proc):
        for name in names:
            c = client(url)
            current = pair_of(c.predict(name, False, api_name="/next_pair"))
            assert current is not None and (name, current) not in acked
            after = c.predict(name, False, "", "", api_name="/vote_b")
            assert pair_of(after) not in (None, current)
            acked.append((name, current))
            c.close()

    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        check_schema(store)
        rows = store.cursor().execute("SELECT annotator, pair_id, superseded_by FROM labels").fetchall()
    per_vote: dict[tuple[str, int], int] = {}
    for annotator, pair_id, superseded in rows:
        assert superseded is None  # nobody undid anything
        per_vote[(annotator, int(pair_id))] = per_vote.get((annotator, int(pair_id)), 0) + 1
    assert [v for v in acked if v not in per_vote] == [], "an acknowledged vote was lost"
    assert {v: n for v, n in per_vote.items() if n > 1} == {}, "a vote was stored twice"
    assert set(per_vote) <= set(sent) | set(acked), "a label nobody sent"
    pairs = [p for _, p in per_vote]
    assert len(pairs) == len(set(pairs)), "a pair was handed to two annotators"


def _tiny_variant(root: Path) -> Path:
    """A tiny Llama and its tokenizer saved as a plain local checkpoint, loadable by `launch.py` as a variant."""
    from transformers import AutoTokenizer

    from tests.models.tiny_models import build_tiny_model, build_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(root / "tokenizer"))
    target = root / "tiny-sft"
    build_tiny_model(tokenizer).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def test_generation_job_killed_mid_way_resumes_without_regenerating(tmp_path):
    from store import Store

    home = tmp_path / "home"
    with Store.open(home / "preflab.duckdb") as store:
        for i in range(8):
            store.add_prompt([{"role": "user", "content": f"Triage incident {i}: disk full"}], "t", "train")
        store.add_model("sft", str(_tiny_variant(tmp_path)), [], "sft")
    # 8 prompts, batches of 2, 2 cells each: one generate call per batch (both cells), 4 calls; block (and die)
    # in the 3rd, so 2 batches are committed and paired.
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(home), "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.strip() == "blocked":
                break
        assert lines[-1:] == ["blocked"], "\n".join(lines)
    finally:
        child.kill()
        child.wait(timeout=30)

    with Store.open(home / "preflab.duckdb") as store:
        check_schema(store)
        (job,) = store.jobs_with_status("generate", ("running",))
        before = (
            store.cursor().execute("SELECT id, prompt_id, cell, text FROM generations ORDER BY id").fetchall()
        )
        assert len(before) == 8
        pairs_before = store.counts()["pairs"]

    # What `serve` does at start-up (build_annotate_tab -> resume_interrupted), with the real model pool.
    from annotate.service import AnnotateService
    from common.context import AppConfig, build_context
    from models.judge import RuleJudge
    from models.local import LocalModel

    generated: list[int] = []
    real = LocalModel.generate

    def counting(self, prompts, params, **kw):
        generated.append(len(prompts))
        return real(self, prompts, params, **kw)

    ctx = build_context(AppConfig(home=home), judge=RuleJudge())
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(LocalModel, "generate", counting)
            assert AnnotateService(ctx).resume_interrupted() == [job.id]
            ctx.jobs.wait(job.id, timeout=120)
        store = ctx.store
        resumed = store.get_job(job.id)
        assert resumed.status == "done", resumed.error
        assert (resumed.result["reused"], resumed.result["generated"]) == (8, 8)
        assert sum(generated) == 8, "only the missing cells were generated"
        after = (
            store.cursor().execute("SELECT id, prompt_id, cell, text FROM generations ORDER BY id").fetchall()
        )
        assert after[: len(before)] == before, "finished cells were kept as they were"
        cells = [(p, c) for _, p, c, _ in after]
        assert len(after) == 16 and len(set(cells)) == 16, "every cell once"
        pairs = store.cursor().execute("SELECT prompt_id, gen_a, gen_b FROM pairs").fetchall()
        assert len({p for p, _, _ in pairs}) == len(pairs), "one pair per prompt, none twice"
        assert len(pairs) == pairs_before + resumed.result["pairs"]
        # The 4 prompts of the unfinished batches got their pair now (unless near-identical, which is counted).
        assert resumed.result["pairs"] + resumed.result["near_identical"] == 4
    finally:
        ctx.store.close()


def _home_with_left_running(tmp_path) -> tuple[Path, int, dict[str, int]]:
    """A home as a killed `serve` leaves it: a DPO run and train/eval/judge jobs still marked running."""
    from store import Store

    home = tmp_path / "home"
    seed_pairs(home, 2)
    with Store.open(home / "preflab.duckdb") as store:
        sft = store.get_model("sft")
        run = store.create_run(
            "dpo", {"beta": 0.1}, dataset_hash="0" * 64, model_id=sft.id, ref_model_id=sft.id
        )
        store.update_run(run.id, status="running")
        (home / "runs" / str(run.id)).mkdir(parents=True)
        jobs = {}
        for kind, params in (("train", {"run_id": run.id}), ("eval", {"arena": ["a", "b"]}), ("judge", {})):
            jobs[kind] = store.create_job(kind, params)
            store.update_job(jobs[kind], status="running", progress=1, total=10)
    return home, run.id, jobs


def test_restart_marks_a_dpo_run_left_running_as_failed(tmp_path):
    home, run_id, _ = _home_with_left_running(tmp_path)
    with serving(home) as (url, _proc):
        client(url).close()
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        run = store.get_run(run_id)
    assert run.status == "failed" and run.error.startswith("interrupted") and run.ended_at is not None


def test_restart_ends_jobs_that_no_process_runs(tmp_path):
    home, _, jobs = _home_with_left_running(tmp_path)
    with serving(home) as (url, _proc):
        client(url).close()
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        statuses = {kind: store.get_job(job_id).status for kind, job_id in jobs.items()}
    assert statuses == {kind: "failed" for kind in jobs}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_serving_process_killed_mid_training_leaves_no_worker_behind(tmp_path, request):
    from train.rundir import RunDir

    tiny = request.getfixturevalue("tiny_sft")
    home = tmp_path / "home"
    child = subprocess.Popen(
        [
            sys.executable,
            str(CHILD.with_name("train_child.py")),
            str(home),
            str(tiny.base),
            str(tiny.adapter),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    worker = None
    try:
        rd = RunDir(home / "runs" / "1")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and child.poll() is None:
            status = rd.read_status() if (rd.path / "status.json").is_file() else {}
            if status.get("step", 0) >= 1 and status.get("pid"):
                worker = int(status["pid"])
                break
            time.sleep(0.1)
        assert worker is not None, "the worker never reached its first step"
        child.kill()  # the supervising process dies mid-run; the worker lives on in its own session
        child.wait(timeout=30)
        assert _alive(worker)

        with serving(home) as (url, _proc):  # restart
            client(url).close()
        from store import Store

        with Store.open(home / "preflab.duckdb") as store:
            run = store.get_run(1)
            labels = store.cursor().execute("SELECT count(*), count(superseded_by) FROM labels").fetchone()
        assert run.status == "failed" and labels == (16, 0)
        deadline = time.monotonic() + 60
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the orphaned worker still trains for a run that reads 'failed'"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)
