"""The Train tab in real Chromium: start a DPO run on the tiny model, watch it finish, see the report."""

from __future__ import annotations

import pytest

from tests.serving import serving
from tests.train.dpo_fixtures import make_ctx, tiny_sft  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


def test_dpo_run_from_the_train_tab(page, tmp_path, tiny_sft):  # noqa: F811
    home = tmp_path / "home"
    ctx = make_ctx(home, tiny_sft, n_triples=24)
    ctx.store.close()
    with serving(home) as (url, _proc):
        page.goto(url)
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-status").get_by_text("No DPO run yet").wait_for(timeout=30_000)
        page.locator("#train-start").click()
        try:
            page.locator("#train-status").get_by_text("Run #1").wait_for(timeout=60_000)
        finally:
            page.screenshot(path=str(tmp_path / "train.png"), full_page=True)  # kept for a failing run
        page.wait_for_function(
            "document.querySelector('#train-status').innerText.includes('done')", timeout=240_000
        )
        runs = page.locator("#train-runs").inner_text()
        assert "dpo" in runs and "done" in runs
        page.locator("#train-report").get_by_text("Reward", exact=False).first.wait_for(timeout=30_000)
        assert page.js_errors == []
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        model = store.get_model("sft+dpo@1")
        assert model is not None and model.kind == "dpo"
        frame = store.run_metrics_frame([1])
    assert {"train", "eval"} <= set(frame["split"]) and "rewards/margins" in set(frame["name"])
