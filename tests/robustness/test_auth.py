"""`serve --auth`: the page and every API route refuse strangers; a login cannot label as someone else."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest

from tests.seed import seed_pairs
from tests.serving import serving

USERS = {"alice": "wonderland-7", "bob": "builder-42"}


def http(url: str, *, data: dict | None = None, method: str | None = None) -> tuple[int, str]:
    """(status, first bytes of the body) of a request without any cookie or credential."""
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(4000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4000).decode("utf-8", "replace")


def client(url: str, auth=None):
    from gradio_client import Client

    return Client(url, auth=auth, verbose=False, analytics_enabled=False, download_files=False)


def stored_labels(home) -> list[tuple[str, int, bool]]:
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        rows = store.cursor().execute(
            "SELECT annotator, pair_id, superseded_by IS NULL FROM labels ORDER BY id"
        )
        return [(a, int(p), live) for a, p, live in rows.fetchall()]


@contextmanager
def team_server(tmp_path):
    """A server whose --auth is a users file with two logins (and a comment line); yields (url, home)."""
    home = tmp_path / "home"
    seed_pairs(home, 12)
    users = tmp_path / "users.txt"
    users.write_text("# the labelling team\n" + "".join(f"{u}:{p}\n" for u, p in USERS.items()))
    with serving(home, "--auth", str(users)) as (url, _proc):
        yield url, home


def test_without_credentials_page_and_api_are_refused(tmp_path):
    home = tmp_path / "home"
    seed_pairs(home, 3)
    with serving(home, "--auth", "alice:wonderland-7") as (url, _proc):
        status, page = http(url)
        assert (
            status == 200 and "vote-a" not in page and "Triage incident" not in page
        )  # the login shell only
        for path in (
            "config",
            "gradio_api/info",
            "gradio_api/openapi.json",
            "gradio_api/queue/status",
            "gradio_api/queue/data?session_hash=x1",
            f"gradio_api/file={home / 'preflab.duckdb'}",
        ):
            assert http(url + path)[0] == 401, path
        for path, data in (
            ("gradio_api/call/vote_a", {"data": ["alice", False, "", ""]}),
            ("gradio_api/call/next_pair", {"data": ["alice", False]}),
            ("gradio_api/queue/join", {"data": ["alice", False], "fn_index": 0, "session_hash": "x1"}),
            ("gradio_api/run/vote_a", {"data": ["alice", False, "", ""]}),
        ):
            status, body = http(url + path, data=data)
            assert status == 401, (path, body)
        from gradio_client.exceptions import AuthenticationError

        with pytest.raises(AuthenticationError):
            client(url)
        with pytest.raises(ValueError, match="Could not login"):
            client(url, auth=("alice", "wrong password"))
        logged_in = client(url, auth=("alice", "wonderland-7"))
        screen = logged_in.predict("alice", False, api_name="/next_pair")
        assert "pair #" in screen[0]
        logged_in.close()
    assert stored_labels(home) == []  # nothing the strangers sent was stored


def test_a_login_cannot_label_or_undo_as_someone_else(tmp_path):
    with team_server(tmp_path) as (url, home):
        alice = client(url, auth=("alice", USERS["alice"]))
        bob = client(url, auth=("bob", USERS["bob"]))
        # The textbox value claims the other person; the login wins everywhere it shows and is stored.
        screen = alice.predict("bob", False, api_name="/next_pair")
        assert screen[-1] == "alice" and "**alice**" in screen[0]
        screen = alice.predict("bob", False, "", "", api_name="/vote_a")
        assert "**alice**: 1 labelled" in screen[0]
        bob.predict("alice", False, api_name="/next_pair")
        bob.predict("alice", False, "", "", api_name="/vote_b")
        # Alice asks to undo "bob"'s vote: only her own label is withdrawn.
        alice.predict("bob", False, api_name="/undo")
        alice.close()
        bob.close()
    labels = stored_labels(home)
    assert {a for a, _, _ in labels} == {"alice", "bob"}
    assert [(a, live) for a, _, live in labels] == [("alice", False), ("bob", True)]


@pytest.mark.browser
def test_browser_shows_a_login_form_then_labels_as_the_login(tmp_path, page):
    with team_server(tmp_path) as (url, _home):
        login_and_vote(page, url)


def login_and_vote(page, url: str) -> None:
    page.goto(url)
    page.locator("input[type=password]").wait_for(timeout=30_000)
    assert page.locator("#vote-a").count() == 0 and page.locator("#response-a").count() == 0
    page.locator("input[type=text]").first.fill("bob")
    page.locator("input[type=password]").fill(USERS["bob"])
    page.locator("button", has_text="Login").click()
    page.locator("#response-a textarea").wait_for(timeout=30_000)
    page.wait_for_function("document.querySelector('#annotator textarea, #annotator input').value === 'bob'")
    page.wait_for_function("document.querySelector('#progress').innerText.includes('labelled')")
    done = int(page.locator("#progress").inner_text().split(":")[1].split()[0])
    page.locator("#annotator textarea, #annotator input").first.fill("mallory")
    page.locator("#vote-tie").click()
    page.wait_for_function(
        "(n) => document.querySelector('#progress').innerText.startsWith('bob: ' + n + ' labelled')",
        arg=done + 1,
        timeout=15_000,
    )
    assert "mallory" not in page.locator("#progress").inner_text()
    assert page.js_errors == []
