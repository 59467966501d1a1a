"""The Eval tab: start an N-way eval, read its table and chart, browse one prompt's outputs side by side."""

from __future__ import annotations

import gradio as gr

from common.context import Context
from common.safe_text import md_text
from common.vocab import PROMPT_SETS, JobKind, JobStatus, Split
from webui.common import cancel_line, empty_state, int_field, warn


def eval_empty_state() -> str:
    """What the Eval tab tells a user before the first eval run."""
    steps = [
        "Train a DPO adapter first (**Train** tab).",
        "Run the 3-way eval below (*Run eval*; blank variants: base, sft and the newest sft+dpo).",
        "The table (with 95% intervals), a chart and a sample viewer appear here.",
    ]
    return empty_state("No eval runs yet", steps)


def build_eval_tab(ctx: Context, demo: gr.Blocks, *, tab: gr.Tab | None = None) -> None:
    """Widgets and events of the Eval tab: start an eval, read its table and chart, browse samples."""

    import pandas as pd

    from common.errors import PrefLabError
    from evaluate.eval_reads import eval_choices, eval_job_status, sample, sample_choices
    from evaluate.eval_report import write_chart
    from evaluate.eval_service import EvalRequest, load_eval, start_eval_job
    from evaluate.responses import ResponseParams

    status = gr.Markdown(eval_empty_state(), elem_id="eval-empty", elem_classes=["empty-state"])
    with gr.Row():
        variants = gr.Textbox(
            label="Variants (comma-separated; blank: base, sft and the newest sft+dpo)",
            elem_id="eval-variants",
        )
        prompt_set = gr.Dropdown(
            list(PROMPT_SETS), value=Split.HELDOUT.value, label="Prompts", elem_id="eval-prompt-set"
        )
        limit = int_field("Prompts to evaluate", "eval-limit", 30, minimum=2)
        judge = gr.Dropdown(["auto", "rule", "anthropic"], value="auto", label="Judge", elem_id="eval-judge")
        max_tokens = int_field("max new tokens", "eval-max-tokens", ResponseParams.max_new_tokens, minimum=8)
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
        from webui.served import charts_dir  # nothing under the home but the served folder reaches the page

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
                params=ResponseParams(max_new_tokens=int(tokens_v or ResponseParams.max_new_tokens)),
            )
            job = start_eval_job(ctx, request, username=getattr(http, "username", None))
        except PrefLabError as exc:
            warn(exc)
            return {job_line: md_text(exc)}
        return {job_line: f"Eval job #{job} started."}

    def on_cancel(http: gr.Request):
        text = cancel_line(ctx, http, JobKind.EVAL, "eval", where=lambda j: not j.params.get("arena"))
        return {job_line: gr.skip() if text is None else text}

    def on_tick(current):
        info = eval_job_status(ctx.store)
        out = {job_line: md_text(info["text"])}
        if (
            info["eval_run_id"] is not None
            and info["eval_run_id"] != current
            and info["status"] == JobStatus.DONE
        ):
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
