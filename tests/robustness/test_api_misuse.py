"""Broken and hostile calls through the public API: a one-line warning, never a server error or a bad write."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest

from tests.seed import seed_pairs
from tests.serving import serving


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


class Server:
    """The module's server and its log, so a test can tell whether its own calls raised inside the server."""

    def __init__(self, url: str, log):
        self.url, self.log, self.mark = url, log, 0

    def start(self):
        self.mark = len(self.log.read_text())
        return client(self.url)

    def tracebacks(self) -> list[str]:
        new = self.log.read_text()[self.mark :]
        return [line for line in new.splitlines() if "Error" in line and not line.startswith("INFO")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("misuse") / "home"
    seed_pairs(home, 6)
    with serving(home) as (url, _proc):
        (log,) = home.parent.glob("serve-*.log")
        yield Server(url, log)


class InProcess:
    """A server in the test process, so a test can read its store while it serves, and hear its warnings."""

    def __init__(self, url: str, ctx, warnings: list[str]):
        self.url, self.ctx, self.warnings = url, ctx, warnings

    def client(self, auth=None):
        from gradio_client import Client

        return Client(self.url, auth=auth, verbose=False, analytics_enabled=False, download_files=False)


@contextmanager
def in_process_server(home, warnings: list[str], users: str | None = None):
    from common.access import parse_auth
    from common.context import AppConfig, build_context
    from models.judge import RuleJudge
    from tests.serving import free_port, pin_test_secret
    from webui.app import launch_app

    pin_test_secret(home)
    ctx = build_context(AppConfig(home=home), judge=RuleJudge())
    if users is not None:
        (home / "users.txt").write_text(users)
        ctx.access = parse_auth(str(home / "users.txt"))
    port = free_port()
    demo = launch_app(ctx, host="127.0.0.1", port=port, auth=ctx.access.gradio_auth(), block=False)
    try:
        yield InProcess(f"http://127.0.0.1:{port}/", ctx, warnings)
    finally:
        demo.close()
        ctx.store.close()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The module's in-process server over 6 pairs; the Annotate tab's warnings are recorded."""
    home = tmp_path_factory.mktemp("misuse-in-process") / "home"
    seed_pairs(home, 6)
    warnings: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("annotate.ui.warn", lambda exc: warnings.append(str(exc)))
        with in_process_server(home, warnings) as srv:
            yield srv


def written(ctx) -> dict[str, int]:
    """Row counts of everything a vote, an undo or a job could write."""
    cur = ctx.store.cursor()
    tables = ("labels", "assignments", "battles", "jobs", "generations", "pairs")
    return {t: cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def live_labels(ctx, annotator: str) -> list[tuple[int, str]]:
    rows = ctx.store.cursor().execute(
        "SELECT pair_id, decision FROM labels WHERE annotator = ? AND superseded_by IS NULL ORDER BY id",
        [annotator],
    )
    return [(int(p), d) for p, d in rows.fetchall()]


def pair_on(screen) -> int | None:
    match = re.search(r"pair #(\d+)", str(screen[0]))
    return int(match.group(1)) if match else None


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "", "x" * 65, "two words", "../../etc"])
def test_next_pair_with_a_bad_annotator_name_answers_without_a_pair(server, name):
    screen = server.start().predict(name, False, api_name="/next_pair")
    assert "pair #" not in screen[0] and "<script" not in screen[0]
    assert server.tracebacks() == []


# Each of these once made the handler return {} (Gradio 6 rejects it with several outputs: an AppError here).
def test_undo_with_nothing_to_undo_is_a_warning_not_a_server_error(server):
    c = server.start()
    c.predict("nobody-yet", False, api_name="/next_pair")
    c.predict("nobody-yet", False, api_name="/undo")
    assert server.tracebacks() == []


def test_a_vote_before_any_pair_is_shown_is_ignored(in_process):
    before = written(in_process.ctx)
    in_process.client().predict("early-bird", False, "", "", api_name="/vote_a")
    assert written(in_process.ctx) == before  # no label, no assignment: nothing at all was written


def test_a_vote_with_a_bad_name_is_a_warning_not_a_server_error(server):
    c = server.start()
    c.predict("fine-name", False, api_name="/next_pair")
    c.predict("<b>not a name</b>", False, "", "", api_name="/vote_a")
    assert server.tracebacks() == []


def test_an_arena_vote_without_a_battle_is_ignored(in_process):
    before = written(in_process.ctx)
    in_process.client().predict("voter", api_name="/arena_vote_left")
    assert written(in_process.ctx) == before  # no battle vote was stored


def test_an_oversized_note_through_the_api_is_not_stored_whole(tmp_path):
    home = tmp_path / "home"
    seed_pairs(home, 2)
    with serving(home) as (url, _proc):
        c = client(url)
        c.predict("alice", False, api_name="/next_pair")
        try:
            c.predict("alice", False, "n" * 1_000_000, "", api_name="/vote_a")
        except Exception:  # a refusal is fine
            pass
        c.close()
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        sizes = [n for (n,) in store.cursor().execute("SELECT length(note) FROM labels").fetchall()]
    assert all(n is None or n <= 2000 for n in sizes), sizes


def test_a_vote_from_a_stale_second_tab_warns_and_stores_nothing(in_process):
    first, second = in_process.client(), in_process.client()  # two tabs of one annotator
    shown = pair_on(first.predict("tabby", False, api_name="/next_pair"))
    assert pair_on(second.predict("tabby", False, api_name="/next_pair")) == shown  # both show the held pair
    after_first = first.predict("tabby", False, "", "", api_name="/vote_a")
    before, warned = written(in_process.ctx), len(in_process.warnings)
    after_second = second.predict("tabby", False, "", "", api_name="/vote_b")  # the stale tab votes too
    assert in_process.warnings[warned:] == [
        f"pair #{shown} already has your vote (a second key press or another tab); "
        "this one was not stored, press Undo to change it"
    ]
    assert written(in_process.ctx) == before
    (label,) = [d for p, d in live_labels(in_process.ctx, "tabby") if p == shown]
    assert (
        pair_on(after_second) == pair_on(after_first) != shown
    )  # the stale tab moves on to the real next pair
    # Undo in the stale tab names no vote of its own; in the first tab it takes back exactly that vote.
    second.predict("tabby", False, api_name="/undo")
    assert in_process.warnings[-1].startswith("nothing to undo") and (shown, label) in live_labels(
        in_process.ctx, "tabby"
    )
    assert pair_on(first.predict("tabby", False, api_name="/undo")) == shown
    assert [p for p, _ in live_labels(in_process.ctx, "tabby")] == []


def test_an_annotator_login_cannot_start_or_cancel_generation(tmp_path):
    home = tmp_path / "home"
    seed_pairs(home, 2)
    warnings: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("annotate.ui.warn", lambda exc: warnings.append(str(exc)))
        with in_process_server(home, warnings, "ann:pw-ann-1\nroot:pw-root-2:admin\n") as srv:
            ann = srv.client(auth=("ann", "pw-ann-1"))
            before = written(srv.ctx)
            status = ann.predict("sft", None, 256, api_name="/generate")
            assert "admin" in status and warnings == ["this needs the admin role; ask an admin"]
            assert written(srv.ctx) == before  # no job
            # Labelling is the annotator's: stored under the login, whatever the textbox says.
            ann.predict("root", False, api_name="/next_pair")
            ann.predict("root", False, "", "", api_name="/vote_a")
            assert [
                a for (a,) in srv.ctx.store.cursor().execute("SELECT annotator FROM labels").fetchall()
            ] == ["ann"]
