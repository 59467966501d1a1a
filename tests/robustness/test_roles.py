"""Roles through the real API: every admin-only event called by an annotator's login is refused and writes
nothing, hidden events (`api_name=False`) called by their index included; the annotator's votes still work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from settings import Paths
from tests.seed import seed_pairs

USERS = {"ann": "pw-annotator-1", "root": "pw-admin-2"}


def client(url: str, user: str):
    from gradio_client import Client

    return Client(url, auth=(user, USERS[user]), verbose=False, download_files=False)


def state(ctx) -> dict:
    """What an admin-only event would change: table counts, jobs, run folders and served downloads."""
    cur = ctx.store.cursor()
    counts = {
        t: cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("prompts", "pairs", "generations", "runs", "jobs", "eval_runs", "models")
    }
    home = ctx.cfg.home
    files = sorted(
        str(p.relative_to(home))
        for root in (Paths(home).served / "downloads", home / "exports", Paths(home).runs)
        if root.exists()
        for p in root.rglob("*")
    )
    return {**counts, "files": files}


def live_labels(ctx, annotator: str) -> int:
    sql = "SELECT count(*) FROM labels WHERE annotator = ? AND superseded_by IS NULL"
    return ctx.store.cursor().execute(sql, [annotator]).fetchone()[0]


def hidden_index(c, elem_id: str, trigger: str) -> int:
    """The index of an `api_name=False` event, found by its trigger: the component's elem_id and event name."""
    ids = {comp["id"] for comp in c.config["components"] if comp.get("props", {}).get("elem_id") == elem_id}
    for i, dep in enumerate(c.config["dependencies"]):
        targets = {(t[0], t[1]) for t in dep.get("targets", [])}
        if dep.get("api_visibility") == "private" and any((cid, trigger) in targets for cid in ids):
            return dep.get("id", i)
    raise AssertionError(f"no hidden {trigger} event on #{elem_id}")


def call_hidden(url: str, user: str, fn_index: int, data: list, upload: Path) -> str:
    """Call an event by its index over the queue, as the browser does (gradio_client refuses private ones)."""
    import httpx

    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("login", data={"username": user, "password": USERS[user]}).status_code == 200
        if "PREFS" in data:
            sent = http.post("gradio_api/upload", files={"files": (upload.name, upload.read_bytes())})
            assert sent.status_code == 200, sent.text
            file = {"path": sent.json()[0], "orig_name": upload.name, "meta": {"_type": "gradio.FileData"}}
            data = [file if v == "PREFS" else v for v in data]
        session = f"roles-{fn_index}"
        joined = http.post(
            "gradio_api/queue/join",
            json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None},
        )
        assert joined.status_code == 200, joined.text
        with http.stream("GET", f"gradio_api/queue/data?session_hash={session}") as events:
            for line in events.iter_lines():
                if '"process_completed"' in line:
                    return line
        raise AssertionError(f"event {fn_index} never completed")


@pytest.fixture
def team(tmp_path):
    """A server in this process (so the test can read its store) with an admin and an annotator login."""
    from access import parse_auth
    from app import launch_app
    from context import AppConfig, build_context
    from tests.serving import free_port

    home = tmp_path / "home"
    seed_pairs(home, 24)
    users = tmp_path / "users.txt"
    users.write_text("ann:pw-annotator-1\nroot:pw-admin-2:admin\n")
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(
        "".join(
            json.dumps({"prompt": f"Outage {i}?", "chosen": f"SEV{i % 3 + 1}", "rejected": "dunno"}) + "\n"
            for i in range(4)
        )
    )
    ctx = build_context(AppConfig(home=home))
    ctx.access = parse_auth(str(users))
    run = ctx.store.create_run("dpo", {}, dataset_hash="x", model_id=None, ref_model_id=None)
    ctx.store.update_run(run.id, status="running")  # a run in progress, for the cancel event
    (Paths(home).runs / str(run.id)).mkdir(parents=True)
    port = free_port()
    demo = launch_app(ctx, host="127.0.0.1", port=port, auth=ctx.access.gradio_auth(), block=False)
    try:
        yield f"http://127.0.0.1:{port}/", ctx, prefs
    finally:
        demo.close()
        ctx.store.close()


# (api_name, inputs): the admin-only events of the Train and Data tabs.
ADMIN_EVENTS = [
    ("/load_demo", []),
    ("/import_file", ["PREFS", "auto", False, False]),
    ("/export", ["jsonl", [], "any", "keep"]),
    ("/train_start", ["demo", 0, 0, 0, "sigmoid", False]),
    ("/train_cancel", []),
    ("/train_sft", [1, None, {"sft_job": None}]),
]
# (elem_id, trigger, inputs): admin-only events hidden with api_name=False, called by index.
HIDDEN_ADMIN_EVENTS = [
    ("export-hub-dry-run", "click", ["acme/prefs", [], "any", "keep"]),
    ("import-file", "change", ["PREFS", "auto"]),
]


def test_an_annotator_is_refused_every_admin_event_but_votes(team):
    from gradio_client import handle_file

    url, ctx, prefs = team
    home = ctx.cfg.home
    ann = client(url, "ann")
    # The annotator labels first, so that an export or a DPO run (20 triples at least) would have data.
    ann.predict("ann", False, api_name="/next_pair")
    for _ in range(22):
        ann.predict("ann", False, "", "", api_name="/vote_a")
    assert live_labels(ctx, "ann") == 22
    before = state(ctx)

    def value(v):
        return handle_file(str(prefs)) if v == "PREFS" else v

    for api_name, inputs in ADMIN_EVENTS:
        try:
            ann.predict(*[value(v) for v in inputs], api_name=api_name)
        except Exception as exc:  # noqa: BLE001 - a refusal may come back as an error; what counts is below
            assert "admin" in str(exc) or "Error" in type(exc).__name__, (api_name, exc)
        assert state(ctx) == before, api_name
    for elem_id, trigger, inputs in HIDDEN_ADMIN_EVENTS:
        reply = call_hidden(url, "ann", hidden_index(ann, elem_id, trigger), inputs, prefs)
        assert "needs the admin role" in reply, (elem_id, reply[:300])
        assert state(ctx) == before, elem_id
    run_dirs = list(Paths(home).runs.iterdir())
    assert run_dirs and not any((d / "CANCEL").exists() or any(d.glob("cancel*")) for d in run_dirs)

    # Votes still work for the annotator, and the same events work for the admin.
    ann.predict("ann", False, "", "", api_name="/vote_b")
    assert live_labels(ctx, "ann") == 23
    ann.close()
    root = client(url, "root")
    root.predict(api_name="/load_demo")
    assert state(ctx)["prompts"] > before["prompts"]
    root.predict("jsonl", [], "any", "keep", api_name="/export")
    assert any(f.startswith("served/downloads/") for f in state(ctx)["files"])
    root.close()
