"""The app shell in real Chromium: five tabs, empty states, shortcuts that respect text boxes."""

from __future__ import annotations

import pytest

from tests.serving import serving

pytestmark = pytest.mark.browser

TABS = ["Annotate", "Train", "Arena", "Eval", "Data"]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("shell") / "home") as (url, _proc):
        yield url


def test_all_five_tabs_with_empty_states(page, app_url, tmp_path):
    page.goto(app_url)
    tabs = page.get_by_role("tab")
    tabs.first.wait_for(timeout=30_000)
    assert [t.strip() for t in tabs.all_inner_texts()] == TABS
    # The Annotate tab opens first and tells a new user what to do.
    page.locator("#annotate-empty").get_by_text("Nothing to label yet").wait_for(timeout=15_000)
    assert "import" in page.locator("#annotate-empty").inner_text().lower()
    for name, elem in [
        ("Train", "#train-empty"),
        ("Arena", "#arena-empty"),
        ("Eval", "#eval-empty"),
        ("Data", "#data-empty"),
    ]:
        page.get_by_role("tab", name=name).click()
        page.locator(elem).wait_for(state="visible", timeout=10_000)
        assert page.locator(elem).inner_text().strip(), f"{name} tab has an empty empty-state"
    page.screenshot(path=str(tmp_path / "shell.png"), full_page=True)
    assert page.js_errors == []


def test_shortcut_script_is_loaded_and_ignores_text_boxes(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab").first.wait_for(timeout=30_000)
    # A probe button stands in for #vote-a (the labelling widgets arrive with the annotation issue).
    page.evaluate(
        """() => {
            window.__clicks = 0;
            const b = document.createElement('button'); b.id = 'vote-a';
            b.onclick = () => window.__clicks++;
            const t = document.createElement('textarea'); t.id = 'probe-text';
            document.querySelector('#tab-annotate').append(b, t);
        }"""
    )
    page.keyboard.press("1")
    assert page.evaluate("window.__clicks") == 1
    page.locator("#probe-text").focus()
    page.keyboard.press("1")
    assert page.evaluate("window.__clicks") == 1, "a key typed into a text box must not vote"
    # On another tab the Annotate buttons are hidden, so the key does nothing.
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-empty").wait_for(state="visible")
    page.keyboard.press("1")
    assert page.evaluate("window.__clicks") == 1
