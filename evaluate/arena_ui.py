"""The Arena tab: blind pairwise battles between two variants; the battle stays on the server until the vote.

Widgets and events only: the battles, votes and results come from `ArenaService` (evaluate/arena.py) as data,
rendered by evaluate/arena_view.py.
"""

from __future__ import annotations

import gradio as gr

from annotate.jobs import job_line as job_waiting_line
from common.context import Context
from common.safe_text import md_text
from common.vocab import PROMPT_SETS, JobKind, JobStatus, Split, Vote
from webui.common import name_field, warn

ARENA_BUTTONS = (
    (Vote.LEFT, "arena-vote-left", "Left is better  [1]", "primary"),
    (Vote.RIGHT, "arena-vote-right", "Right is better  [2]", "primary"),
    (Vote.TIE, "arena-vote-tie", "Tie  [3]", "secondary"),
    (Vote.BOTH_BAD, "arena-vote-both-bad", "Both bad  [4]", "secondary"),
)


def build_arena_tab(ctx: Context, demo: gr.Blocks, *, tab: gr.Tab | None = None):
    """Widgets and events of the Arena tab; the battle (with identities) stays in server-side State."""
    from annotate.screen_text import render_prompt
    from common.errors import PrefLabError
    from evaluate.arena import ArenaService, Matchup
    from evaluate.arena_view import (
        LEAK,
        NO_BATTLE,
        NOT_OPEN,
        arena_empty_state,
        close_line,
        results_markdown,
        reveal_markdown,
    )

    svc = ArenaService(ctx)
    # gr.State never leaves the server: the battle, with its variants, is held here until the vote.
    battle_state = gr.State(None)
    matchup_state = gr.State(None)

    status = gr.Markdown(elem_id="arena-empty", elem_classes=["empty-state"])
    with gr.Row():
        # With --auth the login is the voter: a typed name would let one person vote as another.
        voter = name_field("voter", "arena-voter", visible=not ctx.access.enabled)
        prepare = gr.Button("Prepare responses", elem_id="arena-prepare", scale=0, min_width=200)
        close = gr.Button("Close arena", elem_id="arena-close", scale=0, min_width=160)
        stop = gr.Button("Stop preparing", elem_id="arena-cancel", scale=0, min_width=160)
        choose = gr.Button("Choose variants", elem_id="arena-choose", scale=0, min_width=200)
    with gr.Row(visible=False) as chooser:
        pick_a = gr.Dropdown(label="Variant 1", elem_id="arena-variant-a", choices=[])
        pick_b = gr.Dropdown(label="Variant 2", elem_id="arena-variant-b", choices=[])
        pick_set = gr.Dropdown(
            list(PROMPT_SETS), value=Split.HELDOUT.value, label="Prompts", elem_id="arena-prompt-set"
        )
        use = gr.Button("Use this matchup", elem_id="arena-use", scale=0)
    job_line = gr.Markdown(elem_id="arena-job")
    with gr.Column(visible=False) as battle_col:
        prompt = gr.Textbox(label="Prompt", elem_id="arena-prompt", interactive=False, lines=3, max_lines=12)
        leak = gr.Markdown(elem_id="arena-leak")
        with gr.Row(equal_height=True):
            left = gr.Textbox(label="Left", elem_id="arena-left", interactive=False, lines=8, max_lines=30)
            right = gr.Textbox(label="Right", elem_id="arena-right", interactive=False, lines=8, max_lines=30)
        with gr.Row():
            buttons = {v: gr.Button(t, elem_id=e, variant=k, size="lg") for v, e, t, k in ARENA_BUTTONS}
        gr.Markdown("Keys: `1` left · `2` right · `3` tie · `4` both bad", elem_classes=["kbd-help"])
    reveal = gr.Markdown(elem_id="arena-reveal")
    results = gr.Markdown(elem_id="arena-results")
    timer = gr.Timer(3.0)

    def current_matchup(m):
        return m if m is not None else svc.default_matchup()

    def show(battle, m, *, reveal_text=None, results_text=None) -> dict:
        out = {battle_state: battle, matchup_state: m}
        if reveal_text is not None:
            out[reveal] = reveal_text
        if results_text is not None:
            out[results] = results_text
        if battle is None:
            n = len(svc.variants())
            if m is None:
                empty = arena_empty_state(n)
            else:
                # No names here: the page says nothing about the variants before a vote.
                empty = NOT_OPEN if not svc.is_open(m) else NO_BATTLE
            out.update(
                {
                    status: empty,
                    battle_col: gr.Column(visible=False),
                    prompt: "",
                    left: "",
                    right: "",
                    leak: "",
                }
            )
            return out
        out.update(
            {
                status: "",
                battle_col: gr.Column(visible=True),
                prompt: render_prompt(battle.prompt),
                left: battle.left_text,
                right: battle.right_text,
                leak: LEAK if battle.leak else "",
            }
        )
        return out

    outputs = [battle_state, matchup_state, status, battle_col, prompt, left, right, leak, reveal, results]

    def login(request: gr.Request | None) -> str | None:
        return getattr(request, "username", None)

    def next_for(name, m, request):
        """The next battle for this voter (the login under --auth), or None; a refusal shows as a warning."""
        if m is None:
            return None
        try:
            return svc.next_battle(login(request), m, typed=name or "")
        except PrefLabError as exc:
            warn(exc)
            return None

    def on_load(name, m, request: gr.Request):
        m = current_matchup(m)
        return show(next_for(name, m, request), m)

    def make_vote(vote: str):
        def on_vote(name, battle, m, request: gr.Request):
            if battle is None:
                return {battle_state: gr.skip()}
            try:
                receipt = svc.vote(login(request), battle, vote, typed=name or "")
            except PrefLabError as exc:
                # A repeat vote (another tab), a closed arena or a missing role: say so, then move on.
                warn(exc)
                return {battle_state: None, reveal: md_text(exc)}
            # The reveal travels alone; the next battle follows in its own message (see .then below).
            return {
                battle_state: None,
                reveal: reveal_markdown(receipt),
                results: results_markdown(svc.results(m)),
            }

        return on_vote

    def on_next(name, battle, m, request: gr.Request):
        if battle is not None:
            return {battle_state: gr.skip()}
        return show(next_for(name, m, request), m)

    def on_select(name, battle, m, request: gr.Request):
        """The tab is shown again: a battle on screen stays; otherwise the variants and battles are read afresh."""
        if battle is not None:
            return {battle_state: gr.skip()}
        return on_load(name, m, request)

    def admin_line(m, request, action, line) -> dict:
        """Run an admin action on the matchup on screen; its line, or a warning toast when it is refused."""
        try:
            return {matchup_state: m, job_line: line(action(login(request), m))}
        except PrefLabError as exc:
            warn(exc)
            return {job_line: gr.skip()}

    def on_prepare(m, request: gr.Request):
        m = current_matchup(m)
        if m is None:
            gr.Warning("Register at least two variants first.")
            return {job_line: gr.skip()}
        return admin_line(m, request, svc.prepare, lambda job: f"Preparing responses (job #{job})…")

    def on_close(m, request: gr.Request):
        m = current_matchup(m)
        if m is None:
            return {job_line: gr.skip()}
        return admin_line(m, request, svc.close, lambda closed: close_line(m, closed))

    def on_stop(request: gr.Request):
        from annotate.jobs import cancel_job

        try:
            job = cancel_job(ctx, login(request), JobKind.EVAL, where=lambda j: bool(j.params.get("arena")))
        except PrefLabError as exc:
            warn(exc)
            return {job_line: gr.skip()}
        return {
            job_line: f"Stopping job #{job} after its current batch." if job else "Nothing is being prepared."
        }

    def on_choose():
        names = svc.variants()
        return {
            chooser: gr.Row(visible=True),
            pick_a: gr.Dropdown(choices=names, value=None),
            pick_b: gr.Dropdown(choices=names, value=None),
        }

    def on_use(a, b, prompt_set, name, request: gr.Request):
        try:
            m = Matchup(a, b, prompt_set)
        except PrefLabError as exc:
            warn(exc)
            return {chooser: gr.skip()}
        return {
            **show(
                next_for(name, m, request), m, reveal_text="", results_text=results_markdown(svc.results(m))
            ),
            chooser: gr.Row(visible=False),
        }

    def on_tick(name, battle, m, request: gr.Request):
        job = ctx.store.latest_job(JobKind.EVAL)
        out = {}
        if job is not None and job.params.get("arena"):
            out[job_line] = (
                job_waiting_line(job, ctx.jobs)
                if job.status == JobStatus.QUEUED
                else f"Preparing responses: {job.progress}/{job.total or '?'} (job #{job.id})"
                if job.active
                else f"Responses ready (job #{job.id} {job.status})."
            )
        if battle is None and (m := current_matchup(m)) is not None:
            try:
                nxt = svc.next_battle(login(request), m, typed=name or "")
            except PrefLabError:
                nxt = None  # on_load already warned; a toast every tick would be noise
            if nxt is not None:
                out.update(show(nxt, m))
        return out

    for vote, button in buttons.items():
        button.click(
            make_vote(vote),
            [voter, battle_state, matchup_state],
            [battle_state, reveal, results],
            api_name=f"arena_vote_{vote}",
            concurrency_limit=16,
            concurrency_id="arena-votes",
            show_progress="hidden",
        ).then(
            on_next,
            [voter, battle_state, matchup_state],
            outputs,
            api_name=False,
            show_progress="hidden",
            concurrency_limit=16,  # the vote's own lane: the next battle never waits behind slow events
            concurrency_id="arena-votes",
        )
    prepare.click(on_prepare, [matchup_state], [matchup_state, job_line], api_name="arena_prepare")
    close.click(on_close, [matchup_state], [matchup_state, job_line], api_name="arena_close")
    stop.click(on_stop, None, [job_line], api_name="arena_cancel")  # admin: checked in cancel_job
    choose.click(on_choose, None, [chooser, pick_a, pick_b], api_name=False)
    use.click(on_use, [pick_a, pick_b, pick_set, voter], [*outputs, chooser], api_name=False)
    timer.tick(on_tick, [voter, battle_state, matchup_state], [job_line, *outputs], api_name=False)
    demo.load(on_load, [voter, matchup_state], outputs, api_name=False)
    if tab is not None:
        tab.select(on_select, [voter, battle_state, matchup_state], outputs, api_name=False)
    return svc
