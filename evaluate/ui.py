"""The Arena and Eval tabs: blind pairwise battles and the N-way eval (arrive with the evaluation issue)."""

from __future__ import annotations

import gradio as gr

from context import Context
from ui_common import empty_state


def arena_empty_state(n_models: int) -> str:
    """What the Arena tab tells a user with fewer than two variants to compare."""
    steps = [
        f"Register at least two variants (you have {n_models}): `python launch.py models list`.",
        "Train a DPO adapter (**Train** tab); it is registered as `sft+dpo@<run>`.",
        "Vote blind here: identities stay hidden until you vote. Keys: `1` left, `2` right, `3` tie, `4` both bad.",
    ]
    return empty_state("No battles yet", steps)


def eval_empty_state() -> str:
    """What the Eval tab tells a user before the first eval run."""
    steps = [
        "Train a DPO adapter first (**Train** tab).",
        "Run the 3-way eval: `python launch.py eval --variants base,sft,sft+dpo@RUN --prompts heldout`.",
        "The table (with 95% intervals), a chart and a sample viewer appear here.",
    ]
    return empty_state("No eval runs yet", steps)


def build_arena_tab(ctx: Context, demo: gr.Blocks) -> None:
    """Widgets and events of the Arena tab."""
    status = gr.Markdown(elem_id="arena-empty", elem_classes=["empty-state"])
    demo.load(
        lambda: {status: arena_empty_state(len(ctx.store.list_models()))}, outputs=[status], api_name=False
    )


def build_eval_tab(ctx: Context, demo: gr.Blocks) -> None:
    """Widgets and events of the Eval tab."""
    gr.Markdown(eval_empty_state(), elem_id="eval-empty", elem_classes=["empty-state"])
