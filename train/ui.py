"""The Train tab: DPO runs and their health metrics (arrives with the training issue)."""

from __future__ import annotations

import gradio as gr

from context import Context
from ui_common import empty_state


def train_empty_state(counts: dict[str, int]) -> str:
    """What the Train tab tells a user before the first run."""
    triples = counts.get("preference_triples", 0)
    steps = [
        f"Collect preference triples in **Annotate** (you have {triples}; a demo run wants a few hundred).",
        "Train a DPO LoRA adapter on top of the SFT variant: `python launch.py train --preset demo`.",
        "Watch the reward gap, the validation reward gap and the KL to the reference here.",
    ]
    return empty_state("No training runs yet", steps)


def build_train_tab(ctx: Context, demo: gr.Blocks) -> None:
    """Widgets and events of the Train tab."""
    status = gr.Markdown(elem_id="train-empty", elem_classes=["empty-state"])
    demo.load(lambda: {status: train_empty_state(ctx.store.counts())}, outputs=[status], api_name=False)
