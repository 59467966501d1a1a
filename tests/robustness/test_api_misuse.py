"""Broken and hostile calls through the public API: a one-line warning, never a server error or a bad write."""

from __future__ import annotations

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


def test_a_vote_before_any_pair_is_shown_is_ignored(server):
    server.start().predict("early-bird", False, "", "", api_name="/vote_a")
    assert server.tracebacks() == []


def test_a_vote_with_a_bad_name_is_a_warning_not_a_server_error(server):
    c = server.start()
    c.predict("fine-name", False, api_name="/next_pair")
    c.predict("<b>not a name</b>", False, "", "", api_name="/vote_a")
    assert server.tracebacks() == []


def test_an_arena_vote_without_a_battle_is_ignored(server):
    server.start().predict("voter", api_name="/arena_vote_left")
    assert server.tracebacks() == []


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
