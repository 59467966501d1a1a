"""Assembles the Gradio app: the five tabs, the page chrome and the keyboard shortcuts."""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from context import Context

log = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "ui_assets"
TABS = ("Annotate", "Train", "Arena", "Eval", "Data")


def page_head() -> str:
    """The <head> snippet: the keyboard-shortcut script (Gradio has no hotkey API)."""
    return "<script>\n" + (ASSETS / "shortcuts.js").read_text() + "\n</script>"


def page_css() -> str:
    return (ASSETS / "app.css").read_text()


def build_app(ctx: Context) -> gr.Blocks:
    """Build the Blocks app; each tab module wires its own events to one service call each."""
    from annotate.data_ui import build_data_tab
    from annotate.ui import build_annotate_tab
    from evaluate.ui import build_arena_tab, build_eval_tab
    from train.ui import build_train_tab

    with gr.Blocks(title="PrefLab") as demo:
        gr.Markdown(
            "# PrefLab\nTurn human judgement into a better model: label pairs, train DPO, compare blind."
        )
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Annotate", id="annotate", elem_id="tab-annotate"):
                build_annotate_tab(ctx, demo)
            with gr.Tab("Train", id="train", elem_id="tab-train"):
                build_train_tab(ctx, demo)
            with gr.Tab("Arena", id="arena", elem_id="tab-arena"):
                build_arena_tab(ctx, demo)
            with gr.Tab("Eval", id="eval", elem_id="tab-eval"):
                build_eval_tab(ctx, demo)
            with gr.Tab("Data", id="data", elem_id="tab-data"):
                build_data_tab(ctx, demo)
    return demo


def launch_app(ctx: Context, *, host: str, port: int, auth=None, block: bool = True) -> gr.Blocks:
    """Serve the app; `head`, `css` go to launch() in Gradio 6."""
    from annotate.import_limits import MAX_UPLOAD_BYTES
    from served import blocked_paths

    paths = ctx.cfg.paths
    paths.served.mkdir(parents=True, exist_ok=True)
    demo = build_app(ctx)
    # Several annotators vote at once: the queue must not serialise them behind one worker.
    demo.queue(default_concurrency_limit=1, max_size=256)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        head=page_head(),
        css=page_css(),
        ssr_mode=False,
        show_error=False,
        quiet=True,
        prevent_thread_lock=not block,
        footer_links=["api", "settings"],
        max_file_size=MAX_UPLOAD_BYTES,  # the Data tab's uploads; larger files: `launch.py import`
        # Only the served folder (charts, downloads made for a page); the rest of the home (database, WAL,
        # secret, runs, adapters) is blocked, also for a handler that returns a wrong path.
        allowed_paths=[str(paths.served)],
        blocked_paths=blocked_paths(paths),
    )
    return demo
