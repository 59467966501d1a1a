"""Fake ANTHROPIC_API_KEY / HF_TOKEN through a whole flow: neither shows up in a table, log, run folder or export."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.serving import run_cli, serving
from tests.train.dpo_fixtures import make_ctx, tiny_config, tiny_sft  # noqa: F401 - tiny_sft is a fixture

FAKE_ANTHROPIC_KEY = "sk-ant-api03-PREFLABFAKE7f3e9c1d2b4a6e8f0a1b2c3d4e5f6a7b8c9d0e1f"
FAKE_HF_TOKEN = "hf_PREFLABFAKEtoken9d8c7b6a5f4e3d2c1b0a"
SECRETS = (FAKE_ANTHROPIC_KEY, FAKE_HF_TOKEN)


class EchoingAnthropic(BaseHTTPRequestHandler):
    """A careless upstream: rejects every request with an error message that echoes the caller's key."""

    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        # SDK 2.x sends the key as a bearer token; older ones as x-api-key.
        key = self.headers.get("x-api-key") or self.headers.get("authorization", "").removeprefix("Bearer ")
        type(self).seen.append({"path": self.path, "key": key})
        body = json.dumps(
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": f"bad request for api key {key}"},
            }
        ).encode()
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def echoing_anthropic():
    EchoingAnthropic.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingAnthropic)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", EchoingAnthropic.seen
    server.shutdown()
    server.server_close()


def cli_ok(*args, home, outputs: list[str]):
    proc = run_cli(*args, home=home, timeout=180)
    outputs.append(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc


def leaks_in_tables(db_path) -> list[str]:
    """Every cell of every table, cast to text, searched for the secrets."""
    from store import Store

    found = []
    with Store.open(db_path, read_only=True) as store:
        cur = store.cursor()
        for table in store.tables():
            columns = [r[0] for r in cur.execute(f"DESCRIBE {table}").fetchall()]
            casts = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in columns)
            for row in cur.execute(f"SELECT {casts} FROM {table}").fetchall():
                text = "\x1f".join(v for v in row if v is not None)
                found += [f"{table}: {s[:12]}…" for s in SECRETS if s in text]
    return found


def leaks_in_files(*roots) -> list[str]:
    """Every file under the roots (database, logs, run folders, exports, model caches), read as bytes."""
    found = []
    for root in roots:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found += [f"{path}: {s[:12]}…" for s in SECRETS if s.encode() in data]
    return found


def test_fake_keys_reach_no_table_log_run_folder_or_export(tmp_path, monkeypatch, echoing_anthropic, request):
    tiny = request.getfixturevalue("tiny_sft")
    url_anthropic, seen = echoing_anthropic
    # Everything below (CLI, server, training worker) inherits these: the keys are live throughout.
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url_anthropic)
    home, out = tmp_path / "home", tmp_path / "out"
    out.mkdir()
    outputs: list[str] = []

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt": f"Triage incident {i}: disk full", "gold": "SEV3"}) + "\n" for i in range(4)
        )
    )
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": f"What severity is outage {i}?",
                    "chosen": f"Severity: SEV{i % 3 + 1}\nSummary: outage {i}.\nNext steps:\n- Fix.\n- Tell.",
                    "rejected": f"dunno {i}",
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    cli_ok("import", str(prompts), home=home, outputs=outputs)
    cli_ok("import", str(prefs), "--review", home=home, outputs=outputs)
    cli_ok("judge", "--judge", "rule", "--accept", home=home, outputs=outputs)
    # The real judge against the echoing upstream: it fails, and the echoed key must go nowhere.
    run = run_cli("judge", "--judge", "anthropic", "--limit", "1", home=home, timeout=180)
    outputs.append(run.stdout + run.stderr)
    assert [s["key"] for s in seen] and {s["key"] for s in seen} == {FAKE_ANTHROPIC_KEY}, "the key was used"

    from gradio_client import Client

    with serving(home) as (url, _proc):
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        before = len(seen)
        screen = client.predict("alice", False, api_name="/next_pair")
        for side in ("a", "b"):
            screen = client.predict("alice", False, "a note", "", api_name=f"/vote_{side}")
        assert "pair #" in screen[0]
        # The serving process judged with the key in the background (auto judge = Anthropic here).
        deadline = time.monotonic() + 20
        while len(seen) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(seen) > before, "the server's judge never called the (fake) API"
        client.close()

    # A tiny DPO run on the same home: the worker subprocess inherits the environment.
    ctx = make_ctx(home, tiny, n_triples=12)
    try:
        from train.service import run_training

        result = run_training(ctx, tiny_config(max_steps=2, eval_steps=2, kl_every=0))
        assert result.status == "done", result.error
    finally:
        ctx.store.close()

    cli_ok("export", "--format", "jsonl", "--output", str(out / "triples.jsonl"), home=home, outputs=outputs)
    cli_ok(
        "export", "--format", "parquet", "--output", str(out / "triples.parquet"), home=home, outputs=outputs
    )
    cli_ok("export", "--hub", "me/prefs", "--dry-run", str(out / "hub"), home=home, outputs=outputs)
    cli_ok(
        "export", "--adapter", str(result.run_id), "--hub", "me/adapter", "--dry-run", str(out / "adapter"),
        home=home, outputs=outputs,
    )  # fmt: skip
    cli_ok("stats", home=home, outputs=outputs)
    cli_ok("stats", "--json", home=home, outputs=outputs)
    cli_ok("models", "list", home=home, outputs=outputs)

    assert (out / "hub" / "README.md").is_file() and any((home / "runs").rglob("worker.log"))
    serve_logs = list(tmp_path.glob("serve-*.log"))
    assert serve_logs and "judge" in "".join(o for o in outputs)
    assert leaks_in_tables(home / "preflab.duckdb") == []
    assert leaks_in_files(home, out, *serve_logs) == []
    assert [o for o in outputs if any(s in o for s in SECRETS)] == []


def test_the_training_worker_inherits_no_key(tmp_path, monkeypatch):
    import sys

    from train.process import spawn_worker

    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-PREFLABFAKEopenai")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    show_env = "import json, os; print(json.dumps(dict(os.environ)))"
    proc = spawn_worker(tmp_path, [sys.executable, "-c", show_env])
    assert proc.wait(timeout=60) == 0
    env = json.loads((tmp_path / "worker.log").read_text().strip().splitlines()[-1])
    assert not {"ANTHROPIC_API_KEY", "HF_TOKEN", "OPENAI_API_KEY"} & set(env)
    # What the worker does need still reaches it.
    assert env["HF_HUB_OFFLINE"] == "1" and env["PATH"] and "PREFLAB_PARENT_PID" in env
