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


def test_import_preferences_with_preview_then_export(page, tmp_path):
    import json

    home = tmp_path / "home"
    rows = [
        {
            "prompt": f"Is service {i} healthy?",
            "chosen": f"Yes, service {i} is healthy.",
            "rejected": "dunno <b>x</b>",
        }
        for i in range(6)
    ]
    src = tmp_path / "prefs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with serving(home) as (url, _proc):
        page.goto(url)
        page.get_by_role("tab", name="Data").click()
        page.locator("#import-file input[type=file]").set_input_files(str(src))
        page.locator("#import-detected").get_by_text("Format: trl").wait_for(timeout=30_000)
        page.locator("#import-run").click()
        page.wait_for_function(
            "document.querySelector('#import-result textarea').value.includes('imported')", timeout=30_000
        )
        assert "6 pair(s) imported" in page.locator("#import-result textarea").input_value()
        page.locator("#export-run").click()
        page.wait_for_function(
            "document.querySelector('#export-result textarea').value.includes('wrote')", timeout=30_000
        )
        assert "wrote 6 triple(s)" in page.locator("#export-result textarea").input_value()
        assert page.js_errors == []
    # A download made for this page lives in the served folder, under a fresh unguessable name.
    exported = list((home / "served" / "downloads").glob("*/preferences-*.jsonl"))
    assert len(exported) == 1
    records = [json.loads(line) for line in exported[0].read_text().splitlines()]
    assert {r["chosen"][0]["content"] for r in records} == {r["chosen"] for r in rows}
    assert all(r["source"] == "import" for r in records)
