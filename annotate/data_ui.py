"""The Data tab: import prompts or preference data, export the triples, read the labelling statistics."""

from __future__ import annotations

import gradio as gr

from annotate.data_service import DataService
from annotate.import_limits import MAX_UPLOAD_BYTES, size_text
from common.context import Context
from common.errors import PrefLabError
from common.safe_text import md_text
from common.vocab import ExportTies, LabelSource, values
from webui.common import counts_line, empty_state, warn

FORMATS = ["auto", "prompts", "trl", "trl-conversational", "ultrafeedback", "hh-rlhf"]
# Gradio refuses larger uploads (`max_file_size` in webui/app.py); `launch.py import` takes any size.
UPLOAD_CAP = size_text(MAX_UPLOAD_BYTES)


def data_empty_state(counts: dict[str, int]) -> str:
    """What the Data tab tells a user before any import."""
    steps = [
        "Load the demo prompts (340 incident reports to triage) below, or import your own file.",
        "Register your SFT model under *Models* below (admin), or train the demo SFT in **Train**.",
        "Label pairs in **Annotate**; confirmed labels become (prompt, chosen, rejected) triples.",
        "Export them below (JSONL or Parquet in TRL's format), or write the Hub folder (a dry run) below.",
    ]
    return empty_state("Your data", steps) + f"\n\n<small>{counts_line(counts)}</small>"


def build_data_tab(ctx: Context, demo: gr.Blocks, *, tab: gr.Tab | None = None) -> DataService:
    """Widgets and events of the Data tab; `tab` refreshes the counts and statistics when it is selected."""
    from annotate.export import ExportFilters
    from annotate.models_ui import build_models_section

    svc = DataService(
        ctx.store,
        ctx.cfg.paths.exports,
        access=ctx.access,
        downloads_dir=ctx.cfg.paths.downloads,
    )
    status = gr.Markdown(elem_id="data-empty", elem_classes=["empty-state"])
    gr.Markdown("### Import")
    with gr.Row():
        load_demo = gr.Button(
            "Load the demo prompts", elem_id="load-demo", variant="primary", scale=0, min_width=220
        )
        upload = gr.File(
            label=f"Prompts or preference data (JSONL, JSONL.gz, JSON, CSV, Parquet; up to {UPLOAD_CAP})",
            elem_id="import-file",
            type="filepath",
        )
        with gr.Column(scale=0, min_width=220):
            fmt = gr.Dropdown(FORMATS, value="auto", label="Format", elem_id="import-format")
            skip_bad = gr.Checkbox(
                label="Skip malformed rows (--skip-bad)", value=False, elem_id="import-skip-bad"
            )
            review = gr.Checkbox(
                label="Queue imported pairs for review", value=False, elem_id="import-review"
            )
    detected = gr.Markdown(elem_id="import-detected")
    preview = gr.JSON(label="Preview of the first rows", elem_id="import-preview", visible=False)
    do_import = gr.Button("Import this file", elem_id="import-run", visible=False, scale=0, min_width=200)
    result = gr.Textbox(label="Last import", elem_id="import-result", interactive=False, lines=1)
    build_models_section(ctx, demo, tab=tab)

    gr.Markdown("### Export (TRL conversational preference format, with provenance)")
    with gr.Row():
        exp_format = gr.Dropdown(
            ["jsonl", "parquet"], value="jsonl", label="File format", elem_id="export-format"
        )
        exp_sources = gr.CheckboxGroup(
            list(values(LabelSource)),
            value=[],
            label="Label sources (none ticked: all)",
            elem_id="export-sources",
        )
        exp_agreement = gr.Dropdown(
            ["any", "agree", "disagree"],
            value="any",
            label="Agreement with the judge",
            elem_id="export-agreement",
        )
        exp_ties = gr.Dropdown(
            list(values(ExportTies)),
            value=ExportTies.DROP.value,
            label="Ties and both-bad",
            elem_id="export-ties",
        )
    with gr.Row():
        export_btn = gr.Button("Export to a file", elem_id="export-run", scale=0, min_width=200)
        hub_repo = gr.Textbox(
            label="Hub dataset (ORG/NAME) for a dry run", elem_id="export-hub-repo", scale=1
        )
        hub_btn = gr.Button(
            "Write the Hub folder (dry run)", elem_id="export-hub-dry-run", scale=0, min_width=240
        )
    export_file = gr.File(label="Exported file", elem_id="export-file", visible=False)
    export_result = gr.Textbox(label="Last export", elem_id="export-result", interactive=False, lines=2)

    gr.Markdown("### Statistics")
    stats = gr.Textbox(label="Labelling statistics", elem_id="stats", interactive=False, lines=12)
    refresh = gr.Button("Refresh statistics", elem_id="refresh-stats", scale=0, min_width=200)

    def on_load():
        return {status: data_empty_state(ctx.store.counts()), stats: svc.stats_text()}

    # Every import and export is the admin's: the service checks the login (gr.Request.username).
    def on_demo(request: gr.Request):
        try:
            report = svc.load_demo(user=request.username)
        except PrefLabError as exc:
            warn(exc)
            return {result: gr.skip()}
        return {
            result: report.summary(),
            stats: svc.stats_text(),
            status: data_empty_state(ctx.store.counts()),
        }

    def on_upload(path: str | None, fmt_v: str, request: gr.Request):
        if not path:
            return {preview: gr.JSON(visible=False), do_import: gr.Button(visible=False), detected: ""}
        try:
            seen = svc.preview(path, fmt_v, user=request.username)
        except PrefLabError as exc:
            return {detected: md_text(f"Cannot read this file: {exc}"), preview: gr.JSON(visible=False)}
        # gr.JSON renders values as text, so untrusted rows stay inert.
        return {
            detected: md_text(f"Format: {seen.format} ({seen.detected})"),
            preview: gr.JSON(value=seen.rows, visible=True),
            do_import: gr.Button(visible=True),
        }

    def on_import(path: str | None, fmt_v: str, skip: bool, review_v: bool, request: gr.Request):
        if not path:
            gr.Warning("Choose a file first.")
            return {result: gr.skip()}
        try:
            report = svc.import_file(path, fmt=fmt_v, skip_bad=skip, review=review_v, user=request.username)
        except PrefLabError as exc:
            warn(exc)
            return {result: f"not imported (nothing written): {exc}"}
        return {
            result: report.summary(),
            stats: svc.stats_text(),
            status: data_empty_state(ctx.store.counts()),
        }

    def filters(sources, agreement, ties) -> ExportFilters:
        return ExportFilters(sources=tuple(sources or ()), agreement=agreement, ties=ties)

    def on_export(fmt_v, sources, agreement, ties, request: gr.Request):
        try:
            report = svc.export(fmt_v, filters(sources, agreement, ties), user=request.username)
        except PrefLabError as exc:
            warn(exc)
            return {export_result: str(exc), export_file: gr.File(visible=False)}
        return {export_result: report.summary(), export_file: gr.File(value=str(report.path), visible=True)}

    def on_hub(repo, sources, agreement, ties, request: gr.Request):
        try:
            folder = svc.hub_dry_run(repo, filters(sources, agreement, ties), user=request.username)
        except PrefLabError as exc:
            warn(exc)
            return {export_result: str(exc)}
        # Pushing needs the Hub token and the database: the CLI does it, once no server holds the database.
        return {
            export_result: folder.summary()
            + " — to push it, stop the server, then run `launch.py export --hub ORG/NAME`."
        }

    demo.load(on_load, None, [status, stats], api_name=False)
    load_demo.click(on_demo, None, [result, stats, status], api_name="load_demo")
    upload.change(on_upload, [upload, fmt], [detected, preview, do_import], api_name=False)
    fmt.change(on_upload, [upload, fmt], [detected, preview, do_import], api_name=False)
    do_import.click(
        on_import, [upload, fmt, skip_bad, review], [result, stats, status], api_name="import_file"
    )
    export_btn.click(
        on_export,
        [exp_format, exp_sources, exp_agreement, exp_ties],
        [export_result, export_file],
        api_name="export",
    )
    hub_btn.click(on_hub, [hub_repo, exp_sources, exp_agreement, exp_ties], [export_result], api_name=False)
    refresh.click(on_load, None, [status, stats], api_name=False)
    if tab is not None:
        tab.select(on_load, None, [status, stats], api_name=False)
    return svc
