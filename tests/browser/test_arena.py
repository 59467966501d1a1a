"""The blind arena in real Chromium: keyboard votes, nothing names a variant before the vote, reveal after."""

from __future__ import annotations

import pytest

from tests.serving import serving

pytestmark = pytest.mark.browser

A, B = "zeta-model-x", "omega-model-y"  # names that appear nowhere else on the page

# Tee every fetch response (SSE streams included) into window.__seen, chunk by chunk.
TEE = """
window.__seen = [];
const origFetch = window.fetch;
window.fetch = async (...args) => {
  const resp = await origFetch(...args);
  try {
    const reader = resp.clone().body.getReader();
    const dec = new TextDecoder();
    (async () => { try { for (;;) { const {done, value} = await reader.read(); if (done) break;
      window.__seen.push(dec.decode(value)); } } catch (e) {} })();
  } catch (e) {}
  return resp;
};
"""


def _seed(home, n=8):
    from evaluate.responses import ResponseParams
    from store import NewGeneration, Store

    cell = ResponseParams().cell()
    home.mkdir(parents=True, exist_ok=True)
    truth = {}
    with Store.open(home / "preflab.duckdb") as store:
        ma = store.add_model(A, "tiny", [], "sft")
        mb = store.add_model(B, "tiny", ["x"], "dpo")
        store.open_arena(ma.id, mb.id, "heldout", "admin")  # what "Prepare responses" records
        for i in range(n):
            pid = store.add_prompt([{"role": "user", "content": f"held-out incident {i}"}], "t", "heldout")
            for model, tag in ((ma, "first"), (mb, "second")):
                text = f"answer {i} written by the {tag} contender"
                store.add_generations(model.id, [NewGeneration(pid, cell, text, {}, 1, 5, 0.1)])
                truth[text] = model.name
    return truth


def test_six_blind_votes_by_keyboard(page, tmp_path):
    home = tmp_path / "home"
    truth = _seed(home)
    page.add_init_script(TEE)
    documents = []
    page.on("response", lambda r: documents.append(r) if r.request.resource_type == "document" else None)
    plan = ["1", "2", "3", "1", "4", "2"]
    with serving(home) as (url, _proc):
        page.goto(url)
        page.get_by_role("tab", name="Arena").click()
        page.locator("#arena-left textarea").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelector('#arena-left textarea').value.length > 0")
        html_doc = "".join(d.text() for d in documents)
        assert A not in html_doc and B not in html_doc, "the page config names a variant"
        shown = []
        delivered = -1  # index of the message that brought the previous battle on
        for key in plan:
            left = page.locator("#arena-left textarea").input_value()
            right = page.locator("#arena-right textarea").input_value()
            # The tee reads its copy of the stream asynchronously: wait until it has caught up with the screen.
            page.wait_for_function("(t) => window.__seen.join('').includes(t)", arg=left)
            messages = [m for chunk in page.evaluate("window.__seen") for m in chunk.split("\n\n")]
            # A name may reach the page (a variant list elsewhere); what must not is a link from a side or a
            # text of this battle to its variant. No message carrying this battle's texts names a variant, and
            # from the message that brought it on, the only reveal ("Left was ...") is the previous vote's (it
            # and the next battle travel in separate messages that can cross).
            arrived = min(i for i, m in enumerate(messages) if left in m and i > delivered)
            carrying = [m for m in messages if left in m or right in m]
            assert not any(A in m or B in m for m in carrying), "a payload linked this battle to a variant"
            reveals = [m for m in messages[arrived:] if "Left was" in m]
            assert all(f"Vote #{len(shown)} stored" in m for m in reveals) and (shown or not reveals), (
                "a reveal came before the vote"
            )
            delivered = arrived
            shown.append((left, right, key))
            page.keyboard.press(key)
            # The reveal names the stored vote, so it changes even when two battles had the same sides.
            page.wait_for_function(
                "([n, l, r]) => { const t = document.querySelector('#arena-reveal').innerText;"
                " return t.includes('Vote #' + n + ' stored') && t.includes('Left was ' + l)"
                " && t.includes('right was ' + r); }",
                arg=[len(shown), truth[left], truth[right]],
            )
            if len(shown) < len(plan):
                page.wait_for_function(
                    "(prev) => { const x = document.querySelector('#arena-left textarea');"
                    " return x.value.length > 0 && x.value !== prev; }",
                    arg=left,
                )
        assert "votes from 1 voter" in page.locator("#arena-results").inner_text()
        assert page.js_errors == []
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        frame = store.battle_frame()
    assert len(frame) == 6
    votes = {"1": "left", "2": "right", "3": "tie", "4": "both_bad"}
    texts = {}
    with Store.open(home / "preflab.duckdb") as store:
        texts = dict(store.cursor().execute("SELECT id, text FROM generations").fetchall())
        rows = (
            store.cursor()
            .execute("SELECT left_gen, right_gen, vote, seed FROM battles ORDER BY id")
            .fetchall()
        )
    for (left, right, key), (lg, rg, vote, seed) in zip(shown, rows, strict=True):
        assert (texts[lg], texts[rg]) == (left, right) and vote == votes[key] and seed is not None
    # Both screen orders occurred, so the mapping was really exercised.
    assert {truth[left] for left, _, _ in shown} == {A, B}


def _wait_battle(page) -> str:
    page.locator("#arena-left textarea").wait_for(timeout=30_000)
    page.wait_for_function("document.querySelector('#arena-left textarea').value.length > 0")
    return page.locator("#arena-left textarea").input_value()


def test_a_second_tab_cannot_vote_twice_on_one_battle(page, chromium, tmp_path):
    home = tmp_path / "home"
    _seed(home, n=3)
    second = chromium.new_context().new_page()
    try:
        with serving(home) as (url, _proc):
            for tab in (page, second):
                tab.goto(url)
                tab.get_by_role("tab", name="Arena").click()
            left = _wait_battle(page)
            assert _wait_battle(second) == left, "one voter's two tabs hold the same battle"
            page.keyboard.press("1")
            page.wait_for_function(
                "document.querySelector('#arena-reveal').innerText.includes('Vote #1 stored')"
            )
            second.keyboard.press("2")
            second.locator(".toast-body").first.wait_for(timeout=15_000)
            toast = second.locator(".toast-body").first.inner_text()
            assert "already voted on this battle" in toast
            second.wait_for_function(
                "document.querySelector('#arena-reveal').innerText.includes('already voted on this battle')"
            )
            # The second tab moves on to a battle the voter has not judged.
            second.wait_for_function(
                "(prev) => { const x = document.querySelector('#arena-left textarea');"
                " return x.value.length > 0 && x.value !== prev; }",
                arg=left,
            )
    finally:
        second.context.close()
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        frame = store.battle_frame()
    assert len(frame) == 1 and frame["vote"].tolist() == ["left"]


def test_roles_through_the_api(tmp_path):
    """An annotator login votes but cannot prepare or close an arena or run an eval; the admin can."""
    from gradio_client import Client

    from store import Store

    home = tmp_path / "home"
    _seed(home, n=2)
    users = tmp_path / "users.txt"
    users.write_text("ann:pw-ann-1\nroot:pw-root-1:admin\n")

    def arenas():
        with Store.open(home / "preflab.duckdb") as store:
            return store.cursor().execute("SELECT closed_at IS NULL FROM arena_matchups").fetchall()

    def jobs():
        with Store.open(home / "preflab.duckdb") as store:
            return store.cursor().execute("SELECT count(*) FROM jobs").fetchone()[0]

    with serving(home, "--auth", str(users)) as (url, _proc):
        ann = Client(url, auth=("ann", "pw-ann-1"), verbose=False, download_files=False)
        ann.predict(api_name="/arena_close")
        ann.predict(api_name="/arena_prepare")
        ann.predict(f"{A},{B}", "heldout", 2, "rule", 256, api_name="/eval_run")
    assert arenas() == [(True,)] and jobs() == 0  # still open, nothing started
    with serving(home, "--auth", str(users)) as (url, _proc):
        root = Client(url, auth=("root", "pw-root-1"), verbose=False, download_files=False)
        root.predict(api_name="/arena_close")
        root.predict(f"{A},{B}", "heldout", 2, "rule", 256, api_name="/eval_run")
    assert arenas() == [(False,)] and jobs() == 1
