"""The Data tab in real Chromium: load the demo prompts, see the counts and statistics."""

from __future__ import annotations

import pytest

from tests.serving import serving

pytestmark = pytest.mark.browser


def test_load_demo_prompts_from_the_data_tab(page, tmp_path):
    home = tmp_path / "home"
    with serving(home) as (url, _proc):
        page.goto(url)
        page.get_by_role("tab", name="Data").click()
        page.locator("#load-demo").click()
        result = page.locator("#import-result textarea")
        page.wait_for_function(
            "document.querySelector('#import-result textarea').value.includes('imported')", timeout=30_000
        )
        assert "340 imported" in result.input_value()
        page.wait_for_function("document.querySelector('#stats textarea').value.includes('prompts')")
        assert "340" in page.locator("#stats textarea").input_value()
        # A second click adds nothing.
        page.locator("#load-demo").click()
        page.wait_for_function(
            "document.querySelector('#import-result textarea').value.includes('0 imported')", timeout=30_000
        )
        assert page.js_errors == []
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        assert store.counts()["prompts"] == 340
