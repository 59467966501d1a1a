"""The Annotate tab: label preference pairs (the labelling loop arrives with the annotation issue)."""

from __future__ import annotations

import gradio as gr

from context import Context
from ui_common import counts_line, empty_state


def annotate_empty_state(counts: dict[str, int]) -> str:
    """What the Annotate tab tells a user who has nothing to label yet."""
    steps = []
    if counts.get("prompts", 0) == 0:
        steps.append(
            "Import prompts: the **Data** tab, or `python launch.py import FILE` (JSONL, CSV, Parquet)."
        )
    steps.append(
        "Register your SFT model: `python launch.py models add sft --base ID_OR_PATH --adapter PATH`."
    )
    steps.append("Generate two responses per prompt: `python launch.py generate --variant sft`.")
    steps.append(
        "Come back here to label them. Keys: `1` A, `2` B, `3` tie, `4` both bad, `s` skip, `u` undo."
    )
    return empty_state("Nothing to label yet", steps) + f"\n\n<small>{counts_line(counts)}</small>"


def build_annotate_tab(ctx: Context, demo: gr.Blocks) -> None:
    """Widgets and events of the Annotate tab."""
    status = gr.Markdown(elem_id="annotate-empty", elem_classes=["empty-state"])
    demo.load(lambda: {status: annotate_empty_state(ctx.store.counts())}, outputs=[status], api_name=False)
