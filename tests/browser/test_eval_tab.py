"""The Eval tab in real Chromium: a stored eval run shows its table, chart and side-by-side samples."""

from __future__ import annotations

import pytest

from tests.serving import serving

pytestmark = pytest.mark.browser


def _seed_eval(home, tmp_path):
    from annotate.jobs import JobRunner
    from common.context import AppConfig, Context, variant_resolver
    from evaluate.eval_service import run_eval
    from evaluate.responses import ResponseParams
    from models.judge import RuleJudge
    from models.pool import ModelPool
    from store import Store
    from tests.evaluate.test_eval_support import VariantLoader, add_prompts
    from tests.models.tiny_models import build_tokenizer

    home.mkdir(parents=True)
    store = Store.open(home / "preflab.duckdb")
    add_prompts(store)
    store.add_model("sft", "tiny-base", ["sft-adapter"], "sft")
    store.add_model("sft+dpo@1", "tiny-base", ["sft-adapter", "dpo-1"], "dpo")
    pool = ModelPool(
        variant_resolver(store), tmp_path / "m", loader=VariantLoader(build_tokenizer(tmp_path / "tok"))
    )
    ctx = Context(AppConfig(home=home), store, RuleJudge(), pool, JobRunner(store))
    result = run_eval(
        ctx, ["sft", "sft+dpo@1"], limit=4, params=ResponseParams(max_new_tokens=6, batch_size=4)
    )
    store.close()
    return result


def test_eval_tab_shows_table_chart_and_samples(page, tmp_path):
    home = tmp_path / "home"
    result = _seed_eval(home, tmp_path)
    with serving(home) as (url, _proc):
        page.goto(url)
        page.get_by_role("tab", name="Eval").click()
        table = page.locator("#eval-table table")
        table.wait_for(timeout=30_000)
        header = table.locator("th").all_inner_texts()
        assert header[:3] == ["Metric (scorer)", "sft", "sft+dpo@1"]
        rows = table.locator("tbody tr")
        assert rows.count() == len(result.table.index)
        assert all(cell.strip() for cell in table.locator("td").all_inner_texts()), "an empty cell"
        page.locator("#eval-chart img").wait_for(timeout=15_000)
        page.get_by_text("Sample viewer").click()
        page.wait_for_function(
            "(() => { const x = document.querySelector('#eval-sample-prompt textarea'); return x && x.value.length > 0; })()",
            timeout=15_000,
        )
        outputs = page.locator("#eval-sample-outputs").inner_text()
        assert "sft+dpo@1" in outputs
        assert page.js_errors == []
