"""The Data tab: import and export datasets (arrives with the data issue)."""

from __future__ import annotations

import gradio as gr

from context import Context
from ui_common import counts_line, empty_state


def data_empty_state(counts: dict[str, int]) -> str:
    """What the Data tab tells a user before any import."""
    steps = [
        "Import prompts or an existing preference dataset: `python launch.py import FILE_OR_DATASET`.",
        "Label pairs in **Annotate**; confirmed labels become (prompt, chosen, rejected) triples.",
        "Export them: `python launch.py export --format jsonl --output triples.jsonl`, or `--hub ORG/NAME`.",
    ]
    return empty_state("Your data", steps) + f"\n\n<small>{counts_line(counts)}</small>"


def build_data_tab(ctx: Context, demo: gr.Blocks) -> None:
    """Widgets and events of the Data tab."""
    status = gr.Markdown(elem_id="data-empty", elem_classes=["empty-state"])
    demo.load(lambda: {status: data_empty_state(ctx.store.counts())}, outputs=[status], api_name=False)
