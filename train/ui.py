"""The Train tab: the demo SFT, DPO runs with live reward gap / validation gap / KL, warnings and reports."""

from __future__ import annotations

import logging

import gradio as gr
import pandas as pd

from common.context import Context
from common.errors import PrefLabError
from common.safe_text import md_text
from common.vocab import JobKind, MetricSplit
from train.config import MAX_PROCESSES, PrefLabFields
from train.runs_view import dpo_runs, sft_job_text, train_overview
from train.sft_config import SFTRunConfig
from webui.common import cancel_line, empty_state, int_field, warn

log = logging.getLogger(__name__)

# The curves read together: the reward gap with its validation twin, the KL, and the loss.
PLOTS = (
    ("rewards/margins", "Reward gap (train and validation)"),
    ("kl", "KL to the reference (per token)"),
    ("loss", "Loss (train and validation)"),
    ("rewards/accuracies", "Reward accuracy (train and validation)"),
)


def train_empty_state(counts: dict[str, int], has_sft: bool) -> str:
    """What the Train tab tells a user before the first run."""
    triples = counts.get("preference_triples", 0)
    steps = []
    if not has_sft:
        steps.append(
            "Train the demo SFT below (*Demo SFT*), or register yours in **Data** → *Models* (admin)."
        )
    steps += [
        f"Collect preference triples in **Annotate** (you have {triples}; a demo run wants a few hundred).",
        "Start a DPO run below: a LoRA adapter on top of `sft`.",
        "Watch the reward gap, the validation reward gap and the KL to the reference here, live.",
    ]
    return empty_state("Train", steps)


def metric_frame(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Rows for one plot: step, value, series ('run N train' / 'run N validation')."""
    if frame.empty:
        return pd.DataFrame({"step": [], "value": [], "series": []})
    rows = frame[frame["name"].isin([name, f"eval_{name}", name.replace("rewards/", "eval_rewards/")])]
    rows = rows.dropna(subset=["value"])
    series = (
        rows.apply(
            lambda r: f"run {r.run_id} {'validation' if r.split == MetricSplit.EVAL else 'train'}", axis=1
        )
        if not rows.empty
        else pd.Series([], dtype=str)
    )
    return pd.DataFrame(
        {"step": rows["step"].astype(float), "value": rows["value"].astype(float), "series": series}
    )


def run_result_text(run) -> str:
    """A run's outcome in one short line for the runs table."""
    if run.error:
        return run.error[:160]
    result = run.result or {}
    final = result.get("final") or {}
    parts = []
    if "val_accuracy" in final:
        low, high = (final.get("val_accuracy_ci") or [None, None])[:2]
        ci = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
        parts.append(f"val acc {final['val_accuracy']:.2f}{ci}")
    if "val_margin" in final:
        parts.append(f"val gap {final['val_margin']:+.3f}")
    if "kl" in final:
        parts.append(f"KL {final['kl']:.4f}")
    if "train_loss" in result:
        parts.append(f"loss {result['train_loss']:.3f}")
    return ", ".join(parts)


def truncation_line(run, reference: dict | None = None) -> str:
    """'3 of 40 pairs truncated at max_length 1024 (longest 1210 tokens)', from the run's result or its worker."""
    found = run.result if run.result and "truncated_pairs" in run.result else reference
    if not isinstance(found, dict) or "truncated_pairs" not in found:
        return ""
    return (
        f"{found['truncated_pairs']} of {found.get('pairs')} pairs truncated at max_length "
        f"{found.get('max_length')} (longest {found.get('longest_pair')} tokens)"
    )


def runs_table(runs) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run": r.id,
                "kind": r.kind,
                "status": r.status,
                "started": str(r.started_at or r.created_at)[:19],
                "result": run_result_text(r),
            }
            for r in runs
        ],
        columns=["run", "kind", "status", "started", "result"],
    )


def build_train_tab(ctx: Context, demo: gr.Blocks, *, tab: gr.Tab | None = None) -> None:
    """Widgets and events of the Train tab; `tab` refreshes it when it is selected."""
    from train.service import cancel_training, dpo_config, start_resume, start_training

    status = gr.Markdown(elem_id="train-empty", elem_classes=["empty-state"])
    with gr.Accordion("Demo SFT (the model pairs are generated from)", open=False):
        with gr.Row():
            sft_epochs = int_field("Epochs", "sft-epochs", SFTRunConfig.epochs, minimum=1)
            sft_limit = int_field("At most N examples", "sft-limit", minimum=2)
            sft_button = gr.Button("Train the demo SFT", elem_id="train-sft", variant="secondary")
            sft_cancel = gr.Button("Cancel SFT", elem_id="sft-cancel", variant="stop")
        sft_status = gr.Markdown(elem_id="sft-status")
    gr.Markdown("### DPO run")
    with gr.Row():
        preset = gr.Dropdown(["demo", "default"], value="demo", label="Preset", elem_id="train-preset")
        beta = gr.Number(value=0, minimum=0, label="beta (0: the preset's)", elem_id="train-beta")
        lr = gr.Number(value=0, minimum=0, label="learning rate (0: the preset's)", elem_id="train-lr")
        epochs = gr.Number(value=0, minimum=0, label="epochs (0: the preset's)", elem_id="train-epochs")
        loss_type = gr.Dropdown(
            [
                "sigmoid",
                "ipo",
                "hinge",
                "robust",
                "bco_pair",
                "sppo_hard",
                "nca_pair",
                "apo_zero",
                "apo_down",
            ],
            value="sigmoid",
            label="loss type",
            elem_id="train-loss-type",
        )
        include_judge = gr.Checkbox(label="include judge labels", value=False, elem_id="train-include-judge")
        processes = int_field(
            "Processes (one per GPU)",
            "train-processes",
            PrefLabFields.processes,
            minimum=1,
            maximum=MAX_PROCESSES,
        )
    with gr.Row():
        start = gr.Button("Start DPO run", elem_id="train-start", variant="primary")
        cancel = gr.Button("Cancel run", elem_id="train-cancel", variant="stop")
        resume_id = int_field("Resume run # (from its last checkpoint)", "train-resume-id", minimum=1)
        resume = gr.Button("Resume run", elem_id="train-resume", variant="secondary")
    run_status = gr.Markdown(elem_id="train-status")
    warnings_md = gr.Markdown(elem_id="train-warnings")
    plots = {}
    with gr.Row():
        for name, title in PLOTS[:2]:
            plots[name] = gr.LinePlot(
                x="step", y="value", color="series", title=title, height=260, visible=False
            )
    with gr.Row():
        for name, title in PLOTS[2:]:
            plots[name] = gr.LinePlot(
                x="step", y="value", color="series", title=title, height=260, visible=False
            )
    runs = gr.Dataframe(
        label="Runs (past runs overlay on the plots)", elem_id="train-runs", interactive=False
    )
    report = gr.Markdown(elem_id="train-report")
    curves = gr.Image(
        label="Curves of the latest run", elem_id="train-curves", type="filepath", visible=False
    )
    timer = gr.Timer(3.0)
    state = gr.State({"sft_job": None})

    def refresh() -> dict:
        view = train_overview(ctx)
        out = {status: train_empty_state(view.counts, view.has_sft), runs: runs_table(view.runs)}
        for name, plot in plots.items():
            data = metric_frame(view.metrics, name)
            out[plot] = gr.LinePlot(value=data, visible=not data.empty)
        latest = view.latest
        if latest is None:
            out[run_status] = "No DPO run yet."
            out[warnings_md] = ""
            out[report] = ""
            out[curves] = gr.Image(visible=False)
            return out
        run = latest.run
        truncated = truncation_line(run, latest.reference)
        out[run_status] = md_text(
            f"Run #{run.id}: {run.status}{latest.progress}" + (f" — {run.error}" if run.error else "")
        ) + (f"\n\n{md_text(truncated)}" if truncated else "")
        out[warnings_md] = "\n\n".join(f"⚠️ {md_text(w)}" for w in latest.warnings)
        # The report links its PNG relatively; the tab shows it in its own image component instead.
        out[report] = "\n".join(
            line for line in latest.report.splitlines() if not line.lstrip().startswith("![")
        )
        out[curves] = (
            gr.Image(value=str(latest.curves), visible=True) if latest.curves else gr.Image(visible=False)
        )
        return out

    refresh_outputs = [status, runs, *plots.values(), run_status, warnings_md, report, curves]

    # Every action of this tab is the admin's: the services check the login (gr.Request.username).
    def on_start(preset_v, beta_v, lr_v, epochs_v, loss_v, judge_v, processes_v, request: gr.Request):
        # 0 (or blank) keeps the preset's value: none of these is meaningful at 0.
        overrides = {
            "beta": beta_v or None,
            "learning_rate": lr_v or None,
            "num_train_epochs": epochs_v or None,
            "loss_type": loss_v,
        }
        if processes_v:  # blank keeps one; the config bounds it (torchrun on a CPU, accelerate on GPUs)
            overrides["processes"] = int(processes_v)
        try:
            cfg = dpo_config(None, preset_v, overrides, include_judge=bool(judge_v))
            run_id = start_training(ctx, cfg, user=request.username)
        except PrefLabError as exc:
            warn(exc)
            return refresh()
        gr.Info(f"DPO run #{run_id} started; the curves fill in as it trains.")
        return refresh()

    def on_resume(run_v, request: gr.Request):
        if not run_v:
            gr.Warning("Enter the number of a failed or cancelled run to resume.")
            return refresh()
        try:
            run_id = start_resume(ctx, int(run_v), user=request.username)
        except PrefLabError as exc:
            warn(exc)
            return refresh()
        gr.Info(f"DPO run #{run_id} resumes from its last checkpoint.")
        return refresh()

    def on_cancel(request: gr.Request):
        dpo = dpo_runs(ctx)
        if dpo and not dpo[-1].finished:
            try:
                cancel_training(ctx, dpo[-1].id, user=request.username)
            except PrefLabError as exc:
                warn(exc)
                return refresh()
            gr.Info(f"Cancelling run #{dpo[-1].id} after its current step.")
        return refresh()

    def on_sft(epochs_v, limit_v, st, request: gr.Request):
        from train.sft import sft_run_config
        from train.sft_service import start_demo_sft

        try:
            cfg = sft_run_config(epochs=int(epochs_v or 1), limit=int(limit_v) if limit_v else None)
            job = start_demo_sft(ctx, cfg, user=request.username)
        except PrefLabError as exc:
            warn(exc)
            return {sft_status: md_text(exc), state: st}
        return {sft_status: f"SFT job #{job} started.", state: {**st, "sft_job": job}}

    def on_sft_cancel(request: gr.Request):
        text = cancel_line(ctx, request, JobKind.TRAIN, "SFT", where=lambda j: bool(j.params.get("sft")))
        return {sft_status: gr.skip() if text is None else text}

    def on_tick(st):
        out = refresh()
        job_id = st.get("sft_job")
        text = sft_job_text(ctx, job_id) if job_id is not None else None
        if text is not None:
            out[sft_status] = md_text(text)
        return out

    start.click(
        on_start,
        [preset, beta, lr, epochs, loss_type, include_judge, processes],
        refresh_outputs,
        api_name="train_start",
    )
    cancel.click(on_cancel, None, refresh_outputs, api_name="train_cancel")
    resume.click(on_resume, [resume_id], refresh_outputs, api_name="train_resume")  # admin: in start_resume
    sft_button.click(on_sft, [sft_epochs, sft_limit, state], [sft_status, state], api_name="train_sft")
    sft_cancel.click(on_sft_cancel, None, [sft_status], api_name="train_sft_cancel")  # admin: in cancel_job
    timer.tick(on_tick, [state], [*refresh_outputs, sft_status], api_name=False, show_progress="hidden")
    demo.load(refresh, None, refresh_outputs, api_name=False)
    if tab is not None:
        tab.select(refresh, None, refresh_outputs, api_name=False, show_progress="hidden")
