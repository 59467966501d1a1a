"""The Arena and Eval tabs: blind pairwise battles and the N-way eval (arrive with the evaluation issue)."""

from __future__ import annotations

import gradio as gr

from annotate.jobs import job_line as job_waiting_line
from context import Context
from safe_text import md_text
from ui_common import empty_state, warn


def arena_empty_state(n_models: int) -> str:
    """What the Arena tab tells a user with fewer than two variants to compare."""
    steps = [
        f"Have at least two variants (you have {n_models}): train the demo SFT in **Train**, or register yours "
        "in **Data** → *Models* (admin).",
        "Train a DPO adapter (**Train** tab); it is registered as `sft+dpo@<run>`.",
        "Vote blind here: identities stay hidden until you vote. Keys: `1` left, `2` right, `3` tie, `4` both bad.",
    ]
    return empty_state("No battles yet", steps)


def eval_empty_state() -> str:
    """What the Eval tab tells a user before the first eval run."""
    steps = [
        "Train a DPO adapter first (**Train** tab).",
        "Run the 3-way eval below (*Run eval*; blank variants: base, sft and the newest sft+dpo).",
        "The table (with 95% intervals), a chart and a sample viewer appear here.",
    ]
    return empty_state("No eval runs yet", steps)


ARENA_BUTTONS = (
    ("left", "arena-vote-left", "Left is better  [1]", "primary"),
    ("right", "arena-vote-right", "Right is better  [2]", "primary"),
    ("tie", "arena-vote-tie", "Tie  [3]", "secondary"),
    ("both_bad", "arena-vote-both-bad", "Both bad  [4]", "secondary"),
)


def build_arena_tab(ctx: Context, demo: gr.Blocks, *, tab: gr.Tab | None = None):
    """Widgets and events of the Arena tab; the battle (with identities) stays in server-side State."""
    from annotate.ui import render_prompt
    from errors import PrefLabError
    from evaluate.arena import ArenaService, Matchup

    svc = ArenaService(ctx)
    # gr.State never leaves the server: the battle, with its variants, is held here until the vote.
    battle_state = gr.State(None)
    matchup_state = gr.State(None)

    status = gr.Markdown(elem_id="arena-empty", elem_classes=["empty-state"])
    with gr.Row():
        # With --auth the login is the voter: a typed name would let one person vote as another.
        voter = gr.Textbox(
            value="voter",
            label="Your name",
            elem_id="arena-voter",
            max_length=64,
            scale=1,
            visible=not ctx.access.enabled,
        )
        prepare = gr.Button("Prepare responses", elem_id="arena-prepare", scale=0, min_width=200)
        close = gr.Button("Close arena", elem_id="arena-close", scale=0, min_width=160)
        stop = gr.Button("Stop preparing", elem_id="arena-cancel", scale=0, min_width=160)
        choose = gr.Button("Choose variants", elem_id="arena-choose", scale=0, min_width=200)
    with gr.Row(visible=False) as chooser:
        pick_a = gr.Dropdown(label="Variant 1", elem_id="arena-variant-a", choices=[])
        pick_b = gr.Dropdown(label="Variant 2", elem_id="arena-variant-b", choices=[])
        pick_set = gr.Dropdown(
            ["heldout", "train"], value="heldout", label="Prompts", elem_id="arena-prompt-set"
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
            elif not svc.is_open(m):
                # No names here: the page says nothing about the variants before a vote.
                empty = (
                    "### This arena is not open\n\nAn admin opens it with **Prepare responses** (it generates "
                    "both variants' answers, cached); battles open as they land."
                )
            else:
                empty = (
                    "### No battle ready\n\nEvery prepared battle has your vote, or responses are still "
                    "being generated; new battles appear here as they land."
                )
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
                leak: "⚠️ A response names a model or adapter (identity leak)." if battle.leak else "",
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
                text = svc.vote(login(request), battle, vote, typed=name or "")
            except PrefLabError as exc:
                # A repeat vote (another tab), a closed arena or a missing role: say so, then move on.
                warn(exc)
                return {battle_state: None, reveal: md_text(exc)}
            # The reveal travels alone; the next battle follows in its own message (see .then below).
            return {battle_state: None, reveal: text, results: svc.results(m)}

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

    def on_prepare(m, request: gr.Request):
        m = current_matchup(m)
        if m is None:
            gr.Warning("Register at least two variants first.")
            return {job_line: gr.skip()}
        try:
            job = svc.prepare(login(request), m)
        except PrefLabError as exc:
            warn(exc)
            return {job_line: gr.skip()}
        return {matchup_state: m, job_line: f"Preparing responses (job #{job})…"}

    def on_close(m, request: gr.Request):
        m = current_matchup(m)
        if m is None:
            return {job_line: gr.skip()}
        try:
            text = svc.close(login(request), m)
        except PrefLabError as exc:
            warn(exc)
            return {job_line: gr.skip()}
        return {matchup_state: m, job_line: text}

    def on_stop(request: gr.Request):
        from annotate.jobs import cancel_job

        try:
            job = cancel_job(ctx, login(request), "eval", where=lambda j: bool(j.params.get("arena")))
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
            **show(next_for(name, m, request), m, reveal_text="", results_text=svc.results(m)),
            chooser: gr.Row(visible=False),
        }

    def on_tick(name, battle, m, request: gr.Request):
        job = ctx.store.latest_job("eval")
        out = {}
        if job is not None and job.params.get("arena"):
            out[job_line] = (
                job_waiting_line(job, ctx.jobs)
                if job.status == "queued"
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


def build_eval_tab(ctx: Context, demo: gr.Blocks, *, tab: gr.Tab | None = None) -> None:
    """Widgets and events of the Eval tab: start an eval, read its table and chart, browse samples."""

    import pandas as pd

    from errors import PrefLabError
    from evaluate.eval_report import write_chart
    from evaluate.eval_service import (
        EvalRequest,
        eval_choices,
        eval_job_status,
        load_eval,
        sample,
        sample_choices,
        start_eval_job,
    )
    from evaluate.responses import ResponseParams

    status = gr.Markdown(eval_empty_state(), elem_id="eval-empty", elem_classes=["empty-state"])
    with gr.Row():
        variants = gr.Textbox(
            label="Variants (comma-separated; blank: base, sft and the newest sft+dpo)",
            elem_id="eval-variants",
        )
        prompt_set = gr.Dropdown(
            ["heldout", "train"], value="heldout", label="Prompts", elem_id="eval-prompt-set"
        )
        limit = gr.Number(value=30, precision=0, minimum=2, label="Prompts to evaluate", elem_id="eval-limit")
        judge = gr.Dropdown(["auto", "rule", "anthropic"], value="auto", label="Judge", elem_id="eval-judge")
        max_tokens = gr.Number(
            value=256, precision=0, minimum=8, label="max new tokens", elem_id="eval-max-tokens"
        )
    with gr.Row():
        run = gr.Button("Run eval", elem_id="eval-run", variant="primary", scale=0, min_width=200)
        cancel = gr.Button("Cancel eval", elem_id="eval-cancel", scale=0, min_width=160)
        job_line = gr.Markdown(elem_id="eval-job")
    pick = gr.Dropdown(label="Eval run", elem_id="eval-pick", choices=[])
    table = gr.Markdown(elem_id="eval-table")
    chart = gr.Image(label="Means with 95% intervals", elem_id="eval-chart", type="filepath", visible=False)
    with gr.Accordion("Sample viewer: one prompt, every variant's output", open=False):
        pick_prompt = gr.Dropdown(label="Prompt", elem_id="eval-sample-pick", choices=[])
        sample_prompt = gr.Textbox(label="Prompt", elem_id="eval-sample-prompt", interactive=False, lines=4)
        sample_gold = gr.Textbox(label="Gold answer", elem_id="eval-sample-gold", interactive=False, lines=3)
        sample_out = gr.Dataframe(
            headers=["variant", "output", "scores"],
            elem_id="eval-sample-outputs",
            interactive=False,
            wrap=True,
        )
        sample_note = gr.Markdown(elem_id="eval-sample-withheld")
    timer = gr.Timer(3.0)

    def on_load():
        choices = eval_choices(ctx.store)
        return {pick: gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)}

    def on_pick(eval_id):
        if eval_id is None:
            return {
                table: "",
                chart: gr.Image(visible=False),
                pick_prompt: gr.Dropdown(choices=[], value=None),
            }
        try:
            result = load_eval(ctx.store, int(eval_id))
        except PrefLabError as exc:
            warn(exc)
            return {table: gr.skip()}
        from served import charts_dir  # nothing under the home but the served folder reaches the page

        path = write_chart(result, charts_dir(ctx.cfg.paths) / f"eval_{int(eval_id)}.png")
        prompts = sample_choices(ctx.store, int(eval_id))
        return {
            status: "",
            table: result.markdown(),
            chart: gr.Image(value=str(path), visible=True),
            pick_prompt: gr.Dropdown(choices=prompts, value=prompts[0][1] if prompts else None),
        }

    def on_sample(eval_id, prompt_id):
        if eval_id is None or prompt_id is None:
            return {sample_prompt: gr.skip()}
        data = sample(ctx.store, int(eval_id), int(prompt_id))
        withheld = data["withheld"]
        rows = [
            [
                name,
                "(withheld: its arena is open)" if name in withheld else text,
                "; ".join(f"{k}: {v:.2f}" for k, v in data["scores"].get(name, {}).items() if v is not None),
            ]
            for name, text in data["outputs"].items()
        ]
        return {
            sample_prompt: data["prompt"],
            sample_gold: data["gold"] or "",
            sample_out: pd.DataFrame(rows, columns=["variant", "output", "scores"]),
            sample_note: "\n\n".join(f"**{md_text(n)}**: {md_text(why)}" for n, why in withheld.items()),
        }

    def on_run(names, prompts_v, limit_v, judge_v, tokens_v, http: gr.Request):
        wanted = tuple(n.strip() for n in (names or "").split(",") if n.strip())
        try:
            request = EvalRequest(
                variants=wanted,
                prompt_set=prompts_v,
                limit=int(limit_v) if limit_v else None,
                judge=judge_v,
                params=ResponseParams(max_new_tokens=int(tokens_v or 256)),
            )
            job = start_eval_job(ctx, request, username=getattr(http, "username", None))
        except PrefLabError as exc:
            warn(exc)
            return {job_line: md_text(exc)}
        return {job_line: f"Eval job #{job} started."}

    def on_cancel(http: gr.Request):
        from annotate.jobs import cancel_job

        try:
            job = cancel_job(
                ctx, getattr(http, "username", None), "eval", where=lambda j: not j.params.get("arena")
            )
        except PrefLabError as exc:
            warn(exc)
            return {job_line: gr.skip()}
        return {
            job_line: f"Cancelling eval job #{job} after its current step." if job else "No eval is running."
        }

    def on_tick(current):
        info = eval_job_status(ctx.store)
        out = {job_line: md_text(info["text"])}
        if info["eval_run_id"] is not None and info["eval_run_id"] != current and info["status"] == "done":
            choices = eval_choices(ctx.store)
            out[pick] = gr.Dropdown(choices=choices, value=info["eval_run_id"])
        return out

    def on_select(current):
        """The tab is shown again: the eval runs afresh, keeping the one on screen (no chart redrawn)."""
        choices = eval_choices(ctx.store)
        ids = [value for _label, value in choices]
        keep = current if current in ids else (ids[0] if ids else None)
        return {pick: gr.Dropdown(choices=choices, value=keep)}

    demo.load(on_load, None, [pick], api_name=False)
    if tab is not None:
        tab.select(on_select, [pick], [pick], api_name=False, show_progress="hidden")
    pick.change(on_pick, [pick], [status, table, chart, pick_prompt], api_name=False)
    pick_prompt.change(
        on_sample,
        [pick, pick_prompt],
        [sample_prompt, sample_gold, sample_out, sample_note],
        api_name=False,
    )
    run.click(on_run, [variants, prompt_set, limit, judge, max_tokens], [job_line], api_name="eval_run")
    cancel.click(on_cancel, None, [job_line], api_name="eval_cancel")  # admin: checked in cancel_job
    timer.tick(on_tick, [pick], [job_line, pick], api_name=False, show_progress="hidden")
