"""Threads share one Store safely; a second process gets one clear line about the lock."""

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import store as store_pkg
from common.errors import StoreError, StoreLockedError
from store import Store

REPO_ROOT = Path(store_pkg.__file__).resolve().parents[1]
N_THREADS = 8
PER_THREAD = 20
SHARED = [{"role": "user", "content": "every thread sends this one"}]


def _run_threads(fns):
    """Run callables on their own threads and re-raise the first failure."""
    with ThreadPoolExecutor(len(fns)) as pool:
        return [f.result(timeout=60) for f in [pool.submit(fn) for fn in fns]]


def test_eight_threads_lose_nothing(store: Store, make_pair):
    pairs = [make_pair(store, f"pair {i}") for i in range(5)]
    start = threading.Barrier(N_THREADS)

    def worker(t: int) -> int | None:
        start.wait()
        for k in range(PER_THREAD):
            assert store.add_prompt([{"role": "user", "content": f"thread {t} prompt {k}"}], "t", "train")
            store.add_label(pairs[k % len(pairs)], f"ann-{t}", "a" if k % 2 else "b", note=f"{t}:{k}")
        return store.add_prompt(SHARED, "t", "train")

    shared_ids = _run_threads([lambda t=t: worker(t) for t in range(N_THREADS)])

    assert sum(i is not None for i in shared_ids) == 1  # the duplicate prompt was stored once
    counts = store.counts()
    assert counts["prompts"] == len(pairs) + N_THREADS * PER_THREAD + 1
    assert counts["labels"] == N_THREADS * PER_THREAD
    notes = [n for (n,) in store.cursor().execute("SELECT note FROM labels").fetchall()]
    assert sorted(notes) == sorted(f"{t}:{k}" for t in range(N_THREADS) for k in range(PER_THREAD))

    # Every (annotator, pair) keeps exactly its last vote; the re-votes superseded the rest.
    live = store.cursor().execute("SELECT count(*) FROM labels WHERE superseded_by IS NULL").fetchone()[0]
    assert live == N_THREADS * len(pairs)
    triples = {(tr.annotator, tr.pair_id): tr for tr in store.preference_triples()}
    assert len(triples) == N_THREADS * len(pairs)
    for t in range(N_THREADS):
        for p, pair in enumerate(pairs):
            last_k = max(k for k in range(PER_THREAD) if k % len(pairs) == p)
            assert triples[(f"ann-{t}", pair)].decision == ("a" if last_k % 2 else "b")


def _make_job(store: Store) -> int:
    return store.write(
        lambda cur: cur.execute(
            "INSERT INTO jobs (kind, total) VALUES ('generate', 2) RETURNING id"
        ).fetchone()[0]
    )


def _progress(store: Store, job_id: int) -> int:
    return store.cursor().execute("SELECT progress FROM jobs WHERE id = ?", [job_id]).fetchone()[0]


def test_a_write_write_conflict_is_retried_and_both_updates_land(store: Store):
    job = _make_job(store)
    bump = "UPDATE jobs SET progress = progress + 1 WHERE id = ?"
    a_updated, b_collided, a_committed = threading.Event(), threading.Event(), threading.Event()
    b_attempts = []

    def writer_a():
        def fn(cur):
            cur.execute(bump, [job])
            a_updated.set()
            assert b_collided.wait(10)  # keep the row locked until B has hit it

        store.write(fn)
        a_committed.set()

    def writer_b():
        def fn(cur):
            b_attempts.append(1)
            assert (a_updated if len(b_attempts) == 1 else a_committed).wait(10)
            try:
                cur.execute(bump, [job])
            finally:
                b_collided.set()

        store.write(fn, attempts=10)

    _run_threads([writer_a, writer_b])
    assert len(b_attempts) >= 2  # B's first try conflicted and was re-run
    assert _progress(store, job) == 2


def test_a_conflict_that_outlasts_the_retries_is_a_store_error(store: Store):
    job = _make_job(store)
    bump = "UPDATE jobs SET progress = progress + 1 WHERE id = ?"
    a_updated, b_done = threading.Event(), threading.Event()

    def writer_a():
        def fn(cur):
            cur.execute(bump, [job])
            a_updated.set()
            assert b_done.wait(10)

        store.write(fn)

    def writer_b():
        assert a_updated.wait(10)
        try:
            with pytest.raises(StoreError) as info:
                store.write(lambda cur: cur.execute(bump, [job]), attempts=2)
            return str(info.value)
        finally:
            b_done.set()

    _, message = _run_threads([writer_a, writer_b])
    assert "\n" not in message and "write conflict after 2 attempts" in message
    assert _progress(store, job) == 1  # A's update landed, B's did not half-apply


HOLDER = "import sys; from store import Store; s = Store.open(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"


def test_a_second_process_gets_one_line_naming_the_holder(db_path: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        for read_only in (False, True):
            with pytest.raises(StoreLockedError) as info:
                Store.open(db_path, read_only=read_only)
            message = str(info.value)
            assert "\n" not in message
            assert f"PID {holder.pid}" in message
            assert str(db_path) in message
            assert "stop it or use the UI" in message
            assert "python" in message  # the holder's command line, read from /proc
            assert info.value.holder_pid == holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with Store.open(db_path) as store:  # the lock goes with the process
        assert "prompts" in store.tables()


def test_a_prompt_another_thread_committed_during_our_insert_reads_as_already_stored(
    store: Store, monkeypatch
):
    """DuckDB refuses, rather than skips, a row whose twin was committed after our transaction began."""
    real_write = store.write
    other_id = []

    def racing_write(fn, **kwargs):
        if other_id:  # the race has run: every later write is a plain one
            return real_write(fn, **kwargs)

        def late(cur):
            cur.execute("SELECT count(*) FROM prompts").fetchall()  # our snapshot is taken
            other_id.append(None)
            other = threading.Thread(target=lambda: other_id.append(store.add_prompt(SHARED, "t", "train")))
            other.start()
            other.join()
            return fn(cur)

        return real_write(late, **kwargs)

    monkeypatch.setattr(store, "write", racing_write)
    assert store.add_prompt(SHARED, "t", "train") is None
    assert other_id[1] is not None  # the other thread stored it
    assert store.counts()["prompts"] == 1
