"""Hostile text in every tab of real Chromium: prompts, responses, rationales, notes and variant names stay inert."""

from __future__ import annotations

import json

import pytest

from tests.robustness.payloads import ALL, VARIANT_A, VARIANT_B, XSS, dom_findings
from tests.serving import serving

pytestmark = pytest.mark.browser


class NamedTinyLoader:
    """Stands in for load_variant: a tiny model per variant (only used if a response is missing)."""

    def __init__(self, tokenizer_dir):
        self.tokenizer_dir = tokenizer_dir

    def __call__(self, variant, *, cache_dir, dtype=None):
        from transformers import AutoTokenizer

        from models.local import LocalModel
        from tests.models.tiny_models import build_tiny_model

        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_dir)
        return LocalModel.from_pretrained_objects(build_tiny_model(tokenizer), tokenizer, name=variant.name)


def seed_hostile(home, tmp_path) -> dict:
    """Pairs, verdicts, notes, arena responses, an eval run and a failed DPO run, all carrying the payloads."""
    import pandas as pd

    from annotate.jobs import JobRunner
    from common.context import AppConfig, Context, variant_resolver
    from evaluate.eval_service import run_eval
    from evaluate.responses import ResponseParams
    from models.judge import RuleJudge
    from models.pool import ModelPool
    from store import NewGeneration, Store, VerdictRow
    from tests.models.tiny_models import build_tokenizer
    from train.health import write_report

    home.mkdir(parents=True)
    store = Store.open(home / "preflab.duckdb")
    try:
        writer = store.ensure_model("writer", "tiny-base", [], "sft")
        # Annotate: the first pair carries every payload in prompt, both responses and both rationales.
        texts = [ALL, *XSS]
        pairs = []
        for i, text in enumerate(texts):
            pid = store.add_prompt([{"role": "user", "content": f"{i} {text}"}], "hostile", "train")
            a = store.add_generation(pid, writer.id, f"A{i} {text}")
            b = store.add_generation(pid, writer.id, f"B{i} {text}")
            pairs.append(store.add_pair(pid, a, b))
        judge = RuleJudge()
        for n, pair_id in enumerate(pairs):
            # Inconsistent winners on odd pairs: the "unsure" headline path shows the rationale too.
            winners = ("a", "a") if n % 2 == 0 else ("a", "b")
            store.add_verdicts(
                [
                    VerdictRow(
                        pair_id,
                        judge.name,
                        judge.model,
                        judge.rubric_hash,
                        order,
                        w,
                        f"{order} {ALL}",
                        0.9,
                        None,
                    )
                    for order, w in zip(("ab", "ba"), winners, strict=True)
                ]
            )
        # Notes and edits: a stored label (its pair leaves the queue; notes travel to exports and stats).
        extra = store.add_prompt([{"role": "user", "content": f"noted {ALL}"}], "hostile", "train")
        ga = store.add_generation(extra, writer.id, f"noted A {ALL}")
        gb = store.add_generation(extra, writer.id, f"noted B {ALL}")
        store.add_label(
            store.add_pair(extra, ga, gb), "rater", "a", source="human", note=ALL, chosen_edit=f"edit {ALL}"
        )
        # Arena and Eval: two hostile variants with cached responses on held-out prompts.
        va = store.add_model(VARIANT_A, "tiny-base", [], "sft")
        vb = store.add_model(VARIANT_B, "tiny-base", ["x"], "dpo")
        params = ResponseParams()
        for i, text in enumerate(XSS[:6]):
            pid = store.add_prompt(
                [{"role": "user", "content": f"held-out {i} {text}"}],
                "hostile",
                "heldout",
                gold={"severity": "SEV2", "answer": f"Severity: SEV2 {text}"},
            )
            # The writer is in the eval but not the arena: the sample viewer shows its hostile outputs.
            for model, tag in ((va, "left"), (vb, "right"), (writer, "writer")):
                store.add_generations(
                    model.id, [NewGeneration(pid, params.cell(), f"{tag} {text} {ALL}", {}, 1, 5, 0.1)]
                )
        # What "Prepare responses" records: battles are served, and the viewer withholds the arena's texts.
        store.open_arena(va.id, vb.id, "heldout", "admin")
        pool = ModelPool(
            variant_resolver(store), tmp_path / "m", loader=NamedTinyLoader(build_tokenizer(tmp_path / "tok"))
        )
        ctx = Context(AppConfig(home=home), store, RuleJudge(), pool, JobRunner(store))
        run_eval(ctx, [VARIANT_A, VARIANT_B, "writer"], limit=6, params=params)
        # Train: a failed DPO run whose error and report name the hostile variant.
        run = store.create_run(
            "dpo", {"beta": 0.1}, dataset_hash="0" * 64, model_id=va.id, ref_model_id=va.id
        )
        store.update_run(run.id, status="running")
        store.update_run(
            run.id, status="failed", error=f"worker died on {VARIANT_A}: {ALL}", result={"summary_line": ALL}
        )
        folder = home / "runs" / str(run.id)
        folder.mkdir(parents=True)
        write_report(
            folder / "report.md",
            run={
                "run_id": run.id,
                "status": "failed",
                "variant": VARIANT_A,
                "model": VARIANT_B,
                "error": ALL,
            },
            frame=pd.DataFrame(columns=["run_id", "step", "split", "name", "value"]),
            warnings=[],
        )
    finally:
        store.close()
    return {"pairs": pairs}


def assert_inert(page, where: str, scope: str | None = None) -> None:
    """Nothing ran (no __xss, dialog or page error) and, under `scope`, no payload markup is in the DOM."""
    found = dom_findings(page, scope)
    assert found == [], f"{where}: {found}"
    assert page.dialogs == [], f"{where}: dialogs {page.dialogs}"
    assert page.js_errors == [], f"{where}: page errors {page.js_errors}"


def wait_text(page, selector: str, needle: str, timeout: float = 30_000) -> None:
    page.wait_for_function(
        "([sel, needle]) => { const el = document.querySelector(sel);"
        " return !!el && (el.value || el.innerText || '').length > 0 && (el.value || el.innerText).includes(needle); }",
        arg=[selector, needle],
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    """One server over the hostile home for the whole module (each test gets its own page and session)."""
    tmp = tmp_path_factory.mktemp("hostile")
    home = tmp / "home"
    seed_hostile(home, tmp)
    upload = tmp / "hostile.jsonl"
    upload.write_text("".join(json.dumps({"prompt": f"upload {p}", "gold": p}) + "\n" for p in XSS))
    with serving(home) as (url, _proc):
        yield {"url": url, "upload": upload}


def open_tab(page, url: str, name: str) -> None:
    page.goto(url)
    page.locator("#tabs").wait_for(timeout=60_000)
    if name != "Annotate":
        page.get_by_role("tab", name=name).click()


def test_annotate_shows_payloads_as_text(page, hostile_server):
    open_tab(page, hostile_server["url"], "Annotate")
    # The all-payload pair first: prompt, both responses, the headline and the rationale.
    wait_text(page, "#prompt textarea", "<script", timeout=60_000)
    assert page.locator("#prompt textarea").input_value().startswith("0 " + XSS[0])
    wait_text(page, "#judge-rationale textarea", "onerror")
    assert "<img" in page.locator("#response-a textarea").input_value(), "the payload is shown as text"
    assert_inert(page, "annotate")
    for step in range(3):  # the single-payload pairs, the "unsure" headline among them
        before = page.locator("#prompt textarea").input_value()
        page.locator("#vote-tie").click()
        page.wait_for_function(
            "(b) => document.querySelector('#prompt textarea').value !== b", arg=before, timeout=15_000
        )
        assert_inert(page, f"annotate after vote {step + 1}")


def open_train(page, url: str) -> None:
    open_tab(page, url, "Train")
    wait_text(page, "#train-status", "failed")
    wait_text(page, "#train-report", "DPO run")
    page.locator("#train-runs table").wait_for(timeout=15_000)


def test_train_runs_table_inert(page, hostile_server):
    open_train(page, hostile_server["url"])
    assert "onerror" in page.locator("#train-runs").inner_text(), "the run's error is shown as text"
    assert_inert(page, "train runs table", "#train-runs")


def test_train_status_line_inert(page, hostile_server):
    open_train(page, hostile_server["url"])
    assert_inert(page, "train status", "#train-status")


def test_train_report_inert(page, hostile_server):
    open_train(page, hostile_server["url"])
    assert_inert(page, "train report", "#train-report")


def test_arena_battle_shows_payloads_as_text(page, hostile_server):
    open_tab(page, hostile_server["url"], "Arena")
    wait_text(page, "#arena-left textarea", "", timeout=30_000)
    prompt = page.locator("#arena-prompt textarea").input_value()
    assert any(p in prompt for p in XSS), "the payload is shown as text"
    assert_inert(page, "arena battle")


def test_arena_reveal_names_hostile_variants_inert(page, hostile_server):
    open_tab(page, hostile_server["url"], "Arena")
    wait_text(page, "#arena-left textarea", "", timeout=30_000)
    page.locator("#arena-vote-left").click()
    wait_text(page, "#arena-reveal", "Left was")
    wait_text(page, "#arena-results", "vote")
    assert_inert(page, "arena results", "#arena-results")
    assert_inert(page, "arena reveal")


def open_eval(page, url: str) -> None:
    open_tab(page, url, "Eval")
    page.locator("#eval-table table").wait_for(timeout=30_000)
    page.locator("#eval-chart img").wait_for(timeout=15_000)


def test_eval_chart_and_sample_viewer_inert(page, hostile_server):
    open_eval(page, hostile_server["url"])
    page.get_by_text("Sample viewer").click()
    wait_text(page, "#eval-sample-prompt textarea", "", timeout=15_000)
    wait_text(page, "#eval-sample-outputs", "writer")
    wait_text(page, "#eval-sample-withheld", "arena")  # names the hostile variants, as text
    for scope in (
        "#eval-sample-outputs",
        "#eval-sample-withheld",
        "#eval-sample-prompt",
        "#eval-sample-gold",
        "#eval-pick",
        "#eval-chart",
    ):
        assert_inert(page, "eval samples", scope)


def test_eval_table_names_hostile_variants_inert(page, hostile_server):
    open_eval(page, hostile_server["url"])
    assert_inert(page, "eval table")


def test_warning_toast_naming_hostile_variants_inert(page, hostile_server):
    open_tab(page, hostile_server["url"], "Eval")
    page.locator("#eval-variants textarea").fill("no-such-variant")
    page.locator("#eval-run").click()
    wait_text(page, "#eval-job", "no variant named")
    page.locator(".toast-body").first.wait_for(timeout=10_000)
    assert "no-such-variant" in page.locator(".toast-body").first.inner_text()
    assert_inert(page, "warning toast", ".toast-body")


def upload(page, path) -> None:
    page.locator("#import-file input[type=file]").set_input_files(str(path))


def test_data_tab_stats_upload_preview_and_import_inert(page, hostile_server):
    open_tab(page, hostile_server["url"], "Data")
    wait_text(page, "#stats textarea", "labels")
    upload(page, hostile_server["upload"])
    wait_text(page, "#import-detected", "prompts")
    page.locator("#import-preview").wait_for()
    assert_inert(page, "data preview")
    page.locator("#import-run").click()
    wait_text(page, "#import-result textarea", "imported", timeout=30_000)
    assert_inert(page, "data import")


def test_data_tab_message_about_an_unreadable_file_inert(page, hostile_server, tmp_path):
    # Columns nobody recognises: the message lists them, and they are the file author's text.
    columns = {"![x](javascript:window.__xss=1)": 1, "[y](javascript:window.__xss=1)": 2, XSS[1]: 3}
    bad = tmp_path / "columns.jsonl"
    bad.write_text(json.dumps(columns) + "\n")
    open_tab(page, hostile_server["url"], "Data")
    upload(page, bad)
    wait_text(page, "#import-detected", "Cannot read")
    assert_inert(page, "data detected", "#import-detected")
