"""The Data tab: import prompts (the demo set or a file) and read the labelling statistics."""

from __future__ import annotations

import json

import gradio as gr

from annotate.data_service import DataService
from context import Context
from errors import PrefLabError
from ui_common import counts_line, empty_state


def data_empty_state(counts: dict[str, int]) -> str:
    """What the Data tab tells a user before any import."""
    steps = [
        "Load the demo prompts (340 incident reports to triage) below, or import your own file.",
        "Label pairs in **Annotate**; confirmed labels become (prompt, chosen, rejected) triples.",
        "Export them: `python launch.py export --format jsonl --output triples.jsonl`, or `--hub ORG/NAME`.",
    ]
    return empty_state("Your data", steps) + f"\n\n<small>{counts_line(counts)}</small>"


def build_data_tab(ctx: Context, demo: gr.Blocks) -> DataService:
    """Widgets and events of the Data tab."""
    svc = DataService(ctx.store)
    status = gr.Markdown(elem_id="data-empty", elem_classes=["empty-state"])
    with gr.Row():
        load_demo = gr.Button(
            "Load the demo prompts", elem_id="load-demo", variant="primary", scale=0, min_width=220
        )
        upload = gr.File(
            label="Import prompts (JSONL, JSON, CSV, Parquet)", elem_id="import-file", type="filepath"
        )
        skip_bad = gr.Checkbox(label="Skip malformed rows", value=False, elem_id="import-skip-bad", scale=0)
    preview = gr.JSON(label="Preview of the first rows", elem_id="import-preview", visible=False)
    result = gr.Textbox(label="Last import", elem_id="import-result", interactive=False, lines=1)
    stats = gr.Textbox(label="Labelling statistics", elem_id="stats", interactive=False, lines=12)
    refresh = gr.Button("Refresh statistics", elem_id="refresh-stats", scale=0, min_width=200)

    def on_load():
        return {status: data_empty_state(ctx.store.counts()), stats: svc.stats_text()}

    def on_demo():
        try:
            report = svc.load_demo()
        except PrefLabError as exc:
            gr.Warning(str(exc))
            return {result: gr.skip()}
        return {
            result: report.summary(),
            stats: svc.stats_text(),
            status: data_empty_state(ctx.store.counts()),
        }

    def on_upload(path: str | None, skip: bool):
        if not path:
            return {preview: gr.JSON(visible=False)}
        try:
            rows = svc.preview(path)
            report = svc.import_file(path, skip_bad=skip)
        except PrefLabError as exc:
            gr.Warning(str(exc))
            return {result: f"not imported: {exc}"}
        # gr.JSON renders values as text, so untrusted prompts stay inert.
        return {
            preview: gr.JSON(value=json.loads(json.dumps(rows, default=str)), visible=True),
            result: report.summary(),
            stats: svc.stats_text(),
            status: data_empty_state(ctx.store.counts()),
        }

    demo.load(on_load, None, [status, stats], api_name=False)
    load_demo.click(on_demo, None, [result, stats, status], api_name="load_demo")
    upload.upload(on_upload, [upload, skip_bad], [preview, result, stats, status], api_name=False)
    refresh.click(on_load, None, [status, stats], api_name=False)
    return svc
