"""A new user's first hour, in the browser only: load the demo, register a model, pick it, generate, label by
keyboard, export. No CLI step: `serve` holds the database, so a command the page pointed to could not run."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.pages import generate_pairs, label_by_keyboard, pick, textarea, wait_text
from tests.serving import serving

pytestmark = pytest.mark.browser

N_PROMPTS = 3


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny Llama saved as a local model folder plus a non-zero LoRA adapter: the user's own SFT model.

    Its context is widened to 4096 positions: the demo's incident reports are long in the tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer

    from tests.models.tiny_models import build_tiny_model, build_tokenizer, save_lora

    root = tmp_path_factory.mktemp("first-hour")
    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(root / "tokenizer"))
    model = build_tiny_model(tokenizer, seed=0, dtype=torch.float64)
    model.config.max_position_embeddings = 4096
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapter = save_lora(base, root / "sft-adapter", seed=1, targets=["q_proj", "v_proj"])
    return base, adapter


def test_first_hour_from_the_browser_alone(page, tmp_path, tiny_checkpoint):
    base, adapter = tiny_checkpoint
    home = tmp_path / "home"
    with serving(home) as (url, _proc):
        page.goto(url)
        page.locator("#annotate-empty").get_by_text("Nothing to label yet").wait_for(timeout=30_000)

        # 1) Data: the demo prompts.
        page.get_by_role("tab", name="Data").click()
        page.locator("#load-demo").click()
        wait_text(page, "import-result", "340 imported")

        # Annotate refreshes its counts when selected: no stale "0 prompts ... Import prompts".
        page.get_by_role("tab", name="Annotate").click()
        wait_text(page, "annotate-empty", "340 prompts")
        empty = page.locator("#annotate-empty").inner_text()
        assert "Import prompts" not in empty
        # Nothing to generate from yet: the warning names what to do in the page, never a CLI command.
        page.locator("#generate").click()
        toast = page.locator(".toast-body").first
        toast.wait_for(timeout=15_000)
        first_warning = toast.inner_text()
        assert "Train" in first_warning and "Models" in first_warning, first_warning

        # 2) Data -> Models: register the user's own SFT model (local base + adapter), as the admin.
        page.get_by_role("tab", name="Data").click()
        page.locator("#models").get_by_role("button", name="Models").click()
        page.locator("#models-name textarea, #models-name input").first.fill("mine")
        page.locator("#models-base textarea, #models-base input").first.fill(str(base))
        page.locator("#models-adapters textarea").fill(str(adapter))
        page.locator("#models-register").click()
        wait_text(page, "models-table", "mine")
        assert "this server" in page.locator("#models-table").inner_text()
        # The Arena re-reads the variants when selected: two now (base and mine), so a matchup exists.
        page.get_by_role("tab", name="Arena").click()
        wait_text(page, "arena-empty", "not open")

        # 3) Annotate: the new variant is offered (the picker refreshes on select); generate a few pairs.
        generate_pairs(page, "mine", N_PROMPTS, 12)

        # 4) Label every pair by keyboard.
        labelled = label_by_keyboard(page, "123" * 3)
        page.locator("#annotate-empty").get_by_text("All pairs are labelled").wait_for(timeout=15_000)
        assert labelled >= 1

        # 5) Data: export the triples (ties dropped by default, so keep them to count every label).
        page.get_by_role("tab", name="Data").click()
        pick(page, "export-ties", "keep")
        page.locator("#export-run").click()
        wait_text(page, "export-result", "wrote")
        wrote = int(re.search(r"wrote (\d+) triple", textarea(page, "export-result")).group(1))
        # The file the page offers is the one the user downloads.
        with page.expect_download(timeout=15_000) as download:
            page.locator("#export-file a").first.click()
        records = [json.loads(line) for line in download.value.path().read_text().splitlines()]
        assert page.js_errors == []

    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        model = store.get_model("mine")
        assert model is not None and model.adapters == [str(adapter.resolve())]
        gens = (
            store.cursor()
            .execute("SELECT count(*), min(model_id), max(model_id) FROM generations")
            .fetchone()
        )
        assert gens == (2 * N_PROMPTS, model.id, model.id)
        labels = store.cursor().execute("SELECT count(*) FROM labels WHERE source = 'human'").fetchone()[0]
        jobs = store.cursor().execute("SELECT kind, status FROM jobs").fetchall()
    assert labels == labelled and wrote == labelled
    assert jobs == [("generate", "done")]
    assert len(records) == wrote and all(r["source"] == "human" for r in records)


def test_models_table_and_variant_picker_show_hostile_names_as_text(page, tmp_path):
    from store import Store
    from tests.robustness.payloads import VARIANT_A, VARIANT_B, dom_findings

    home = tmp_path / "home"
    home.mkdir()
    with Store.open(home / "preflab.duckdb") as store:
        store.add_model(VARIANT_A, "tiny-base", [], "sft")
        store.add_model(VARIANT_B, "tiny-base", ["<b id='xss-vb'>adapter</b>"], "sft")
        store.add_prompt([{"role": "user", "content": "hello"}], "t", "train")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with serving(home) as (url, _proc):
        page.goto(url)
        page.get_by_role("tab", name="Data").click()
        page.locator("#models").get_by_role("button", name="Models").click()
        wait_text(page, "models-table", 'id="xss-va"')
        assert "xss-vb" in page.locator("#models-table").inner_text()
        page.get_by_role("tab", name="Annotate").click()
        pick(page, "generate-variant", VARIANT_B)
        wait_text(page, "generate-note", "javascript:window.__xss")
        assert dom_findings(page, None) == []
        assert dialogs == [] and page.js_errors == []
