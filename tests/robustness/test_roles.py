"""Roles through the real API: every event states its role; every admin-only event called by an annotator's
login is refused (the page says so) and writes nothing, hidden events (`api_name=False`) called by their index
included; the annotator's votes still work, and the admin's calls do."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from common.settings import Paths
from tests.seed import seed_pairs

USERS = {"ann": "pw-annotator-1", "root": "pw-admin-2"}
ADMIN, ANNOTATOR = "admin", "annotator"  # annotator: any login (read-only views included)
STATE = object()  # a gr.State input: the server fills it from the session

# Every event handler of the app, by its qualified name, and the role it needs. A new event fails
# test_every_event_states_its_role until it is listed here, and an admin one until ADMIN_CALLS calls it.
EVENT_ROLES = {
    "build_annotate_tab.<locals>.make_vote.<locals>.on_vote": ANNOTATOR,
    "build_annotate_tab.<locals>.on_undo": ANNOTATOR,
    "build_annotate_tab.<locals>.on_hide": ANNOTATOR,
    "build_annotate_tab.<locals>.on_load": ANNOTATOR,
    "build_annotate_tab.<locals>.on_tick": ANNOTATOR,
    "build_annotate_tab.<locals>.on_generate": ADMIN,
    "build_annotate_tab.<locals>.on_cancel": ADMIN,
    "build_annotate_tab.<locals>.on_variants": ANNOTATOR,
    "build_annotate_tab.<locals>.on_pick": ANNOTATOR,
    "build_annotate_tab.<locals>.on_select": ANNOTATOR,
    "build_train_tab.<locals>.on_start": ADMIN,
    "build_train_tab.<locals>.on_cancel": ADMIN,
    "build_train_tab.<locals>.on_resume": ADMIN,
    "build_train_tab.<locals>.on_sft": ADMIN,
    "build_train_tab.<locals>.on_sft_cancel": ADMIN,
    "build_train_tab.<locals>.on_tick": ANNOTATOR,
    "build_train_tab.<locals>.refresh": ANNOTATOR,
    "build_arena_tab.<locals>.make_vote.<locals>.on_vote": ANNOTATOR,
    "build_arena_tab.<locals>.on_next": ANNOTATOR,
    "build_arena_tab.<locals>.on_choose": ANNOTATOR,
    "build_arena_tab.<locals>.on_use": ANNOTATOR,
    "build_arena_tab.<locals>.on_tick": ANNOTATOR,
    "build_arena_tab.<locals>.on_load": ANNOTATOR,
    "build_arena_tab.<locals>.on_select": ANNOTATOR,
    "build_arena_tab.<locals>.on_prepare": ADMIN,
    "build_arena_tab.<locals>.on_close": ADMIN,
    "build_arena_tab.<locals>.on_stop": ADMIN,
    "build_eval_tab.<locals>.on_load": ANNOTATOR,
    "build_eval_tab.<locals>.on_pick": ANNOTATOR,
    "build_eval_tab.<locals>.on_sample": ANNOTATOR,
    "build_eval_tab.<locals>.on_tick": ANNOTATOR,
    "build_eval_tab.<locals>.on_select": ANNOTATOR,
    "build_eval_tab.<locals>.on_run": ADMIN,
    "build_eval_tab.<locals>.on_cancel": ADMIN,
    "build_data_tab.<locals>.on_load": ANNOTATOR,
    "build_data_tab.<locals>.on_demo": ADMIN,
    "build_data_tab.<locals>.on_upload": ADMIN,
    "build_data_tab.<locals>.on_import": ADMIN,
    "build_data_tab.<locals>.on_export": ADMIN,
    "build_data_tab.<locals>.on_hub": ADMIN,
    "build_models_section.<locals>.on_models": ANNOTATOR,
    "build_models_section.<locals>.on_register": ADMIN,
    "build_models_section.<locals>.on_device": ADMIN,
}


def open_arena(ctx) -> None:
    base, sft = ctx.store.get_model("base"), ctx.store.get_model("sft")
    ctx.store.open_arena(base.id, sft.id, "heldout", "root")


def running_job(kind: str, params: dict):
    """Setup: a job of `kind` that runs until someone cancels it."""

    def setup(ctx) -> None:
        def body(handle) -> dict:
            deadline = time.monotonic() + 120
            while not handle.cancelled and time.monotonic() < deadline:
                time.sleep(0.05)
            return {}

        active = "SELECT id FROM jobs WHERE kind = ? AND status IN ('queued', 'running')"
        for (other,) in ctx.store.cursor().execute(active, [kind]).fetchall():  # one job per kind
            ctx.jobs.cancel(other)
            ctx.jobs.wait(other, timeout=60)
        job_id = ctx.jobs.start(kind, params, body)
        # Settled (running, or waiting for the device) before `state` is read.
        deadline = time.monotonic() + 60
        while ctx.store.get_job(job_id).status != "running" and ctx.jobs.waiting_for(job_id) is None:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.01)

    return setup


# Handler -> (inputs as the page sends them, setup that makes a wrongly allowed call visible in `state`).
ADMIN_CALLS = {
    "build_annotate_tab.<locals>.on_generate": (["base", 2, 16], None),
    "build_annotate_tab.<locals>.on_cancel": ([], running_job("generate", {})),
    "build_train_tab.<locals>.on_start": (["demo", 0, 0, 0, "sigmoid", False, 1], None),
    "build_train_tab.<locals>.on_cancel": ([], None),
    "build_train_tab.<locals>.on_resume": ([1], None),
    "build_train_tab.<locals>.on_sft": ([1, None, STATE], None),
    "build_train_tab.<locals>.on_sft_cancel": ([], running_job("train", {"sft": True})),
    "build_arena_tab.<locals>.on_prepare": ([STATE], None),
    "build_arena_tab.<locals>.on_close": ([STATE], open_arena),
    "build_arena_tab.<locals>.on_stop": ([], running_job("eval", {"arena": ["base", "sft"]})),
    "build_eval_tab.<locals>.on_run": (["base,sft", "train", 2, "rule", 16], None),
    "build_eval_tab.<locals>.on_cancel": ([], running_job("eval", {"variants": ["base", "sft"]})),
    "build_data_tab.<locals>.on_demo": ([], None),
    "build_data_tab.<locals>.on_upload": (["PREFS", "auto"], None),
    "build_data_tab.<locals>.on_import": (["PREFS", "auto", False, False], None),
    "build_data_tab.<locals>.on_export": (["jsonl", [], "any", "keep"], None),
    "build_data_tab.<locals>.on_hub": (["acme/prefs", [], "any", "keep"], None),
    "build_models_section.<locals>.on_register": (["mine", "acme/tiny-model", "", "", "", "", ""], None),
    "build_models_section.<locals>.on_device": (["cpu"], None),
}


def qualname(block_fn) -> str:
    return getattr(block_fn.fn, "__qualname__", repr(block_fn.fn))


def test_every_event_states_its_role(tmp_path):
    from common.context import AppConfig, build_context
    from webui.app import build_app

    ctx = build_context(AppConfig(home=tmp_path / "home"))
    try:
        names = {qualname(f) for f in build_app(ctx).fns.values()}
    finally:
        ctx.store.close()
    assert names - set(EVENT_ROLES) == set(), "new events: add each to EVENT_ROLES with its role"
    assert {n for n, r in EVENT_ROLES.items() if r == ADMIN} == set(ADMIN_CALLS)
    assert set(EVENT_ROLES) - names == set(), "stale entries"


def client(url: str, user: str):
    from gradio_client import Client

    return Client(url, auth=(user, USERS[user]), verbose=False, download_files=False)


def state(ctx) -> dict:
    """What an admin-only event would change: rows, job and run states, arenas, run folders and downloads."""
    cur = ctx.store.cursor()
    tables = ("prompts", "pairs", "generations", "labels", "judge_verdicts", "runs", "eval_runs", "models")
    found = {t: cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    found["jobs"] = cur.execute("SELECT id, kind, status FROM jobs ORDER BY id").fetchall()
    found["run_states"] = cur.execute("SELECT id, status FROM runs ORDER BY id").fetchall()
    found["arenas"] = cur.execute(
        "SELECT model_lo, model_hi, prompt_set, opened_at, closed_at FROM arena_matchups ORDER BY 1, 2, 3"
    ).fetchall()
    found["device"] = (ctx.cfg.device, ctx.generator.plan())
    home = ctx.cfg.home
    found["files"] = sorted(
        str(p.relative_to(home))
        for root in (Paths(home).served / "downloads", home / "exports", Paths(home).runs)
        if root.exists()
        for p in root.rglob("*")
    )
    return found


def live_labels(ctx, annotator: str) -> int:
    sql = "SELECT count(*) FROM labels WHERE annotator = ? AND superseded_by IS NULL"
    return ctx.store.cursor().execute(sql, [annotator]).fetchone()[0]


def call_by_index(url: str, user: str, fn_index: int, data: list, upload: Path) -> str:
    """Call an event by its index over the queue, as the page does; returns every message it streamed back."""
    import httpx

    with httpx.Client(base_url=url, timeout=60) as http:
        assert http.post("login", data={"username": user, "password": USERS[user]}).status_code == 200
        if "PREFS" in data:
            sent = http.post("gradio_api/upload", files={"files": (upload.name, upload.read_bytes())})
            assert sent.status_code == 200, sent.text
            file = {"path": sent.json()[0], "orig_name": upload.name, "meta": {"_type": "gradio.FileData"}}
            data = [file if v == "PREFS" else v for v in data]
        data = [None if v is STATE else v for v in data]
        session = f"roles-{fn_index}-{time.monotonic_ns()}"
        joined = http.post(
            "gradio_api/queue/join",
            json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None},
        )
        assert joined.status_code == 200, joined.text
        lines = []
        with http.stream("GET", f"gradio_api/queue/data?session_hash={session}") as events:
            for line in events.iter_lines():
                lines.append(line)
                if '"process_completed"' in line:
                    return "\n".join(lines)
        raise AssertionError(f"event {fn_index} never completed")


@pytest.fixture
def team(tmp_path):
    """A server in this process (so the test can read its store) with an admin and an annotator login."""
    from common.access import parse_auth
    from common.context import AppConfig, build_context
    from tests.serving import free_port
    from webui.app import launch_app

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
    for i in range(3):  # held-out prompts, so that an arena could be prepared
        ctx.store.add_prompt([{"role": "user", "content": f"Held-out incident {i}"}], "test", "heldout")
    run = ctx.store.create_run("dpo", {}, dataset_hash="x", model_id=None, ref_model_id=None)
    ctx.store.update_run(run.id, status="running")  # a run in progress, for the cancel event
    (Paths(home).runs / str(run.id)).mkdir(parents=True)
    port = free_port()
    demo = launch_app(ctx, host="127.0.0.1", port=port, auth=ctx.access.gradio_auth(), block=False)
    try:
        yield f"http://127.0.0.1:{port}/", ctx, demo, prefs
    finally:
        for job in ctx.store.cursor().execute("SELECT id FROM jobs").fetchall():
            ctx.jobs.cancel(job[0])
        demo.close()
        ctx.store.close()


def test_an_annotator_is_refused_every_admin_event_but_votes(team):
    from gradio_client import handle_file

    url, ctx, demo, prefs = team
    ann = client(url, "ann")
    # The annotator labels first, so that an export or a DPO run (20 triples at least) would have data.
    ann.predict("ann", False, api_name="/next_pair")
    for _ in range(22):
        ann.predict("ann", False, "", "", api_name="/vote_a")
    assert live_labels(ctx, "ann") == 22

    called = set()
    for fn_index, block_fn in demo.fns.items():
        name = qualname(block_fn)
        if EVENT_ROLES.get(name) != ADMIN:
            continue
        inputs, setup = ADMIN_CALLS[name]
        if setup is not None and name not in called:
            setup(ctx)
        before = state(ctx)
        # Through the page's queue, by index (hidden events too): refused, and the page says why.
        reply = call_by_index(url, "ann", fn_index, inputs, prefs)
        assert "needs the admin role" in reply, (name, reply[-400:])
        assert state(ctx) == before, name
        # Through gradio_client, by name, where the event has one.
        if block_fn.api_visibility == "public":
            args = [handle_file(str(prefs)) if v == "PREFS" else v for v in inputs if v is not STATE]
            ann.predict(*args, api_name=f"/{block_fn.api_name}")
            assert state(ctx) == before, (name, block_fn.api_name)
        called.add(name)
    assert called == set(ADMIN_CALLS)

    # Votes still work for the annotator, and the admin's calls do what they say.
    ann.predict("ann", False, "", "", api_name="/vote_b")
    assert live_labels(ctx, "ann") == 23
    ann.close()
    root = client(url, "root")
    prompts = state(ctx)["prompts"]
    root.predict(api_name="/load_demo")
    assert state(ctx)["prompts"] > prompts
    root.predict("jsonl", [], "any", "keep", api_name="/export")
    assert any(f.startswith("served/downloads/") for f in state(ctx)["files"])
    root.predict("mine", "acme/tiny-model", "", "", "", "", "", api_name="/models_register")
    assert ctx.store.get_model("mine").base == "acme/tiny-model"
    for job in ctx.jobs.active():  # the device never changes under a running job: stop the setups' jobs
        ctx.jobs.cancel(job)
        ctx.jobs.wait(job, timeout=60)
    root.predict("cpu", api_name="/models_device")
    assert ctx.cfg.device == "cpu"
    root.close()
