"""Labelling in real Chromium: keyboard votes, undo, reload, and stored labels match what was chosen."""

from __future__ import annotations

import pytest

from tests.seed import XSS, seed_pairs
from tests.serving import serving

pytestmark = pytest.mark.browser


def _current(page) -> tuple[str, str]:
    a = page.locator("#response-a textarea").input_value()
    b = page.locator("#response-b textarea").input_value()
    return a, b


def _wait_change(page, before: tuple[str, str]) -> tuple[str, str]:
    page.wait_for_function(
        "([a, b]) => { const x = document.querySelector('#response-a textarea');"
        " return x && x.value !== a; }",
        arg=list(before),
        timeout=15_000,
    )
    return _current(page)


def test_label_by_keyboard_with_tie_undo_and_reload(page, tmp_path):
    home = tmp_path / "home"
    pairs = seed_pairs(home, 8)
    good_texts = {p["good"] for p in pairs}
    with serving(home) as (url, _proc):
        page.goto(url)
        page.locator("#response-a textarea").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelector('#response-a textarea').value.length > 0")
        expected: dict[str, str] = {}  # prompt -> decision recorded
        screens = []
        # 1) prefer the good answer by key, 2) tie, 3) prefer good, then undo the third and vote bad instead.
        for step, plan in enumerate(["good", "tie", "good", "undo-bad", "good"]):
            a, b = _current(page)
            prompt = page.locator("#prompt textarea").input_value()
            screens.append((prompt, a, b))
            if plan == "tie":
                key = "3"
            elif plan == "good":
                key = "1" if a in good_texts else "2"
            else:  # undo the previous vote, then on the same pair choose the bad answer
                page.keyboard.press("u")
                back = _wait_change(page, (a, b))
                prompt = page.locator("#prompt textarea").input_value()
                assert prompt == screens[-2][0], "undo shows the undone pair again"
                a, b = back
                key = "2" if a in good_texts else "1"
                plan = "bad"
            expected[prompt] = plan
            page.keyboard.press(key)
            _wait_change(page, (a, b))
            if step == 1:  # reload mid-way: the held pair comes back
                held = _current(page)
                page.reload()
                page.locator("#response-a textarea").wait_for(timeout=30_000)
                page.wait_for_function("document.querySelector('#response-a textarea').value.length > 0")
                assert _current(page) == held
        assert page.js_errors == []
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        triples = store.preference_triples()
        live = store.cursor().execute("SELECT count(*) FROM labels WHERE superseded_by IS NULL").fetchone()[0]
        total = store.cursor().execute("SELECT count(*) FROM labels").fetchone()[0]
    assert live == 4 and total == 5  # the undone label is kept, superseded
    by_prompt = {t.prompt[0]["content"]: t for t in triples}
    assert set(by_prompt) == set(expected)
    for prompt, plan in expected.items():
        t = by_prompt[prompt]
        if plan == "tie":
            assert t.decision == "tie"
        elif plan == "good":
            assert t.chosen in good_texts and t.rejected not in good_texts
        else:
            assert t.chosen not in good_texts and t.rejected in good_texts


def test_untrusted_text_is_shown_not_executed(page, tmp_path):
    home = tmp_path / "home"
    seed_pairs(home, 5, xss=True)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with serving(home) as (url, _proc):
        page.goto(url)
        page.locator("#response-a textarea").wait_for(timeout=30_000)
        for _ in range(5):
            page.wait_for_function("document.querySelector('#response-a textarea').value.length > 0")
            a, b = _current(page)
            prompt = page.locator("#prompt textarea").input_value()
            assert any(x in prompt for x in XSS), "the payload is shown as text"
            assert page.evaluate("window.__xss") is None
            assert page.locator("#injected").count() == 0
            assert (
                page.locator("#judge-suggestion img, #judge-suggestion script, #judge-suggestion svg").count()
                == 0
            )
            page.keyboard.press("3")
            try:
                _wait_change(page, (a, b))
            except Exception:
                break  # the last pair: the empty state replaces it
    assert dialogs == []
    assert page.js_errors == []
