"""The user whose model sits behind an OpenAI-compatible server, in the browser only: register it, generate pairs
through the server, label them, DPO-train on the local weights, and run the arena between served variants. Every
response comes from the server (a real `transformers serve`, here on a tiny model that samples, as vLLM does at
temperature > 0); the serving process loads no model of its own."""

from __future__ import annotations

import json

import pytest

from tests.browser.pages import generate_pairs, label_by_keyboard, pick, wait_text
from tests.serving import serving

pytestmark = pytest.mark.browser

N_TRAIN = 20  # the demo preset needs 16 training and 4 validation triples


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory):
    """`transformers serve` on a tiny Llama folder whose generation config samples: (url, served model id, folder)."""
    import torch
    from transformers import AutoTokenizer

    from bench.servers import ServerFailed, transformers_serve
    from tests.models.tiny_models import build_tiny_model, build_tokenizer

    root = tmp_path_factory.mktemp("served-tiny")
    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(root / "tokenizer"))
    model = build_tiny_model(tokenizer, seed=0, dtype=torch.float32)
    model.config.max_position_embeddings = 1024
    model.generation_config.do_sample = True  # two responses to one prompt differ, so they make a pair
    folder = root / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    try:
        with transformers_serve(folder, root / "serve.log", timeout=240) as url:
            yield url, str(folder), folder
    except ServerFailed as exc:
        pytest.fail(str(exc))


def _seed_prompts(home) -> None:
    from store import Store

    home.mkdir(parents=True, exist_ok=True)
    with Store.open(home / "preflab.duckdb") as store:
        for i in range(N_TRAIN):
            store.add_prompt([{"role": "user", "content": f"name animal number {i} please"}], "t", "train")
        for i in range(3):
            store.add_prompt([{"role": "user", "content": f"which colour is sky {i}?"}], "t", "heldout")


def _register(page, name: str, *, base: str = "", endpoint: str, served: str) -> None:
    page.locator("#models-name textarea, #models-name input").first.fill(name)
    page.locator("#models-base textarea, #models-base input").first.fill(base)
    page.locator("#models-endpoint textarea, #models-endpoint input").first.fill(endpoint)
    page.locator("#models-served-model textarea, #models-served-model input").first.fill(served)
    page.locator("#models-register").click()
    wait_text(page, "models-result", f"Registered {name}")


def test_generate_label_train_and_arena_through_an_inference_server(page, tmp_path, tiny_server):
    url_v1, served, folder = tiny_server
    home = tmp_path / "home"
    _seed_prompts(home)
    with serving(home) as (url, _proc):
        page.goto(url)
        # 1) Data -> Models: the user's SFT with local weights (for training) and its server (for generation),
        #    and a second served variant for the arena.
        page.get_by_role("tab", name="Data").click()
        page.locator("#models").get_by_role("button", name="Models").click()
        _register(page, "sft", base=str(folder), endpoint=url_v1, served=served)
        _register(page, "served-b", endpoint=url_v1, served=served)
        wait_text(page, "models-table", "served-b")
        table = page.locator("#models-table").inner_text()
        assert table.count(f"endpoint {url_v1}") == 2, table

        # 2) Annotate: sft is preselected; its pairs come from the server.
        generate_pairs(page, "sft", N_TRAIN, 8)

        # 3) Label every pair by keyboard: A and B alternately (ties would not train).
        labelled = label_by_keyboard(page, "12" * N_TRAIN)
        page.locator("#annotate-empty").get_by_text("All pairs are labelled").wait_for(timeout=15_000)
        assert labelled == N_TRAIN

        # 4) Train: a DPO run on the local weights, in the training worker.
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-start").click()
        page.locator("#train-status").get_by_text("Run #1").wait_for(timeout=60_000)
        page.wait_for_function(
            "document.querySelector('#train-status').innerText.includes('done')", timeout=300_000
        )

        # 5) Arena: sft against served-b, both on the server; prepare responses, then one blind vote.
        page.get_by_role("tab", name="Arena").click()
        page.locator("#arena-choose").click()
        pick(page, "arena-variant-a", "sft")
        pick(page, "arena-variant-b", "served-b")
        page.locator("#arena-use").click()
        page.locator("#arena-prepare").click()
        wait_text(page, "arena-job", "Responses ready", timeout=180_000)
        page.wait_for_function(
            "document.querySelector('#arena-left textarea').value.length > 0", timeout=60_000
        )
        page.locator("#arena-vote-left").click()
        wait_text(page, "arena-reveal", "Left was")
        assert page.js_errors == []

    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        cur = store.cursor()
        sources = cur.execute(
            "SELECT m.name, g.params FROM generations g JOIN models m ON m.id = g.model_id"
        ).fetchall()
        labels = cur.execute("SELECT count(*) FROM labels WHERE source = 'human'").fetchone()[0]
        run = cur.execute("SELECT status FROM runs WHERE kind = 'dpo'").fetchall()
        battles = cur.execute("SELECT count(*) FROM battles").fetchone()[0]
        trained = store.get_model("sft+dpo@1")
    # Pairs (2 per train prompt) and arena responses (both variants, 3 held-out prompts): all from the server.
    assert len(sources) == 2 * N_TRAIN + 2 * 3
    assert {name for name, _ in sources} == {"sft", "served-b"}
    assert all(json.loads(params)["via"] == "endpoint" for _, params in sources)
    assert labels == N_TRAIN and run == [("done",)] and battles == 1
    assert trained is not None and trained.base == str(folder)
