"""Assembles the Gradio app: the five tabs, the page chrome and the keyboard shortcuts."""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from common.context import Context

log = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets"
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
        # Each tab reads what it shows afresh when selected (counts, variants, runs): work done in another tab
        # (the demo prompts, a new variant) shows at once, not after a reload.
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Annotate", id="annotate", elem_id="tab-annotate") as tab:
                build_annotate_tab(ctx, demo, tab=tab)
            with gr.Tab("Train", id="train", elem_id="tab-train") as tab:
                build_train_tab(ctx, demo, tab=tab)
            with gr.Tab("Arena", id="arena", elem_id="tab-arena") as tab:
                build_arena_tab(ctx, demo, tab=tab)
            with gr.Tab("Eval", id="eval", elem_id="tab-eval") as tab:
                build_eval_tab(ctx, demo, tab=tab)
            with gr.Tab("Data", id="data", elem_id="tab-data") as tab:
                build_data_tab(ctx, demo, tab=tab)
    return demo


# Gradio's own cap (`max_size`) counts every waiting call of every event: 256 calls of one slow event made every vote
# fail with "queue full". Instead there is no global cap; each event runs in its own lane (slow ones one at a time,
# votes many at once) and one user (the login, else the browser session) may keep only a few calls of one lane
# waiting, so a flood of slow calls is refused to its sender and never reaches the votes.
VOTE_LANES = frozenset({"votes", "arena-votes"})
PENDING_PER_USER = 4
PENDING_PER_USER_VOTES = 32


def configure_queue(demo: gr.Blocks) -> gr.Blocks:
    """No global queue cap; per-user, per-lane caps on waiting calls (see VOTE_LANES above)."""
    demo.queue(default_concurrency_limit=1, max_size=None)
    queue = demo._queue  # Gradio has no per-user cap: its one entry point for every call is wrapped instead
    push = queue.push

    async def capped_push(body, request, username):
        fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
        if fn is not None:
            lane = fn.concurrency_id
            limit = PENDING_PER_USER_VOTES if lane in VOTE_LANES else PENDING_PER_USER
            if _pending(queue, lane, username or body.session_hash) >= limit:
                return (
                    False,
                    f"you already have {limit} calls of this action waiting; wait for them to finish",
                    "queue_full",
                )
        return await push(body, request, username)

    queue.push = capped_push
    return demo


def _pending(queue, lane: str, who: str | None) -> int:
    """Calls of one lane that `who` has waiting or running."""
    if who is None:
        return 0
    lane_queue = queue.event_queue_per_concurrency_id.get(lane)
    waiting = list(lane_queue.queue) if lane_queue is not None else []
    running = [e for batch in queue.active_jobs if batch for e in batch if e.concurrency_id == lane]
    return sum(1 for e in waiting + running if (e.username or e.session_hash) == who)


def launch_app(ctx: Context, *, host: str, port: int, auth=None, block: bool = True) -> gr.Blocks:
    """Serve the app; `head`, `css` go to launch() in Gradio 6."""
    from annotate.import_limits import MAX_UPLOAD_BYTES
    from webui.served import blocked_paths

    paths = ctx.cfg.paths
    paths.served.mkdir(parents=True, exist_ok=True)
    demo = build_app(ctx)
    configure_queue(demo)
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


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """True for hosts only this machine can reach."""
    import ipaddress

    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(ctx: Context, access, *, host: str, port: int) -> None:
    """`launch.py serve`: the app with these logins (`access`), warning when anyone on the network would be admin."""
    import sys

    ctx.access = access
    if not access.enabled and not is_loopback(host):
        # Without --auth everyone who can reach the port is the admin: import, export, train, judge.
        message = (
            f"warning: serving on {host} without --auth: anyone who can reach port {port} "
            "can read, export and change everything; pass --auth USERS_FILE"
        )
        print(message, file=sys.stderr, flush=True)
    log.info("serving on http://%s:%s (home %s)", host, port, ctx.cfg.home)
    launch_app(ctx, host=host, port=port, auth=access.gradio_auth())
