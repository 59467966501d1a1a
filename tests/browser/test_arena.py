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
        for key in plan:
            left = page.locator("#arena-left textarea").input_value()
            right = page.locator("#arena-right textarea").input_value()
            # The tee reads its copy of the stream asynchronously: wait until it has caught up with the screen.
            page.wait_for_function("(t) => window.__seen.join('').includes(t)", arg=left)
            # Every message since the last one that revealed identities (the previous vote's reveal)
            # must be free of variant names: that is all the browser got about this battle.
            messages = [m for chunk in page.evaluate("window.__seen") for m in chunk.split("\n\n")]
            last_reveal = max((i for i, m in enumerate(messages) if A in m or B in m), default=-1)
            since = messages[last_reveal + 1 :]
            assert left in "".join(since) or not shown, "the battle came after the last reveal"
            assert not any(A in m or B in m for m in since), "a payload named a variant before the vote"
            if not shown:
                assert last_reveal == -1, "nothing named a variant before the first vote"
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
