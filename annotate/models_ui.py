"""The Models section (in the Data tab): the variants with where they run, and a form to register one (admin)."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from annotate.models_service import (
    MAX_NAME_CHARS,
    MAX_PATH_CHARS,
    VariantSpec,
    device_choices,
    list_variants,
    register_variant,
    set_device,
)
from common.context import Context
from common.errors import PrefLabError
from common.safe_text import md_text
from common.serving import Serving
from webui.common import warn

COLUMNS = ["variant", "kind", "where it runs", "base", "adapters"]
HELP = (
    "A *variant* writes responses: a base model plus ordered LoRA adapters, or a model an inference server "
    "serves (OpenAI-compatible: vLLM, SGLang, TGI, llama.cpp, Ollama), or both: local weights for training, "
    "the server for generation. An endpoint with no base gives an existing variant (say `sft`) a server. "
    "Bring your own SFT model as `sft` (it is then preselected in **Annotate** → *Generate pairs*). "
    "Only an admin may register one; paths are on the machine that runs PrefLab."
)


def variants_frame(ctx: Context) -> pd.DataFrame:
    """The Models table: one row per variant (shown as plain text)."""
    rows = [
        [i.name, i.kind, i.where, i.base or "-", "\n".join(i.adapters) or "-"] for i in list_variants(ctx)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def build_models_section(ctx: Context, demo: gr.Blocks, *, tab: gr.Tab | None = None) -> None:
    """Widgets and events of the Models section; `tab` refreshes the table when it is selected."""
    with gr.Accordion("Models", open=False, elem_id="models"):
        gr.Markdown(HELP)
        table = gr.Dataframe(
            value=pd.DataFrame(columns=COLUMNS),
            headers=COLUMNS,
            label="Registered variants",
            elem_id="models-table",
            interactive=False,
            wrap=True,
        )
        with gr.Row():
            name = gr.Textbox(
                label="Name", placeholder="sft", elem_id="models-name", max_length=MAX_NAME_CHARS
            )
            base = gr.Textbox(
                label="Base model: a local folder or a Hugging Face id",
                elem_id="models-base",
                max_length=MAX_PATH_CHARS,
                scale=2,
            )
        adapters = gr.Textbox(
            label="LoRA adapter folders, one per line, applied in order (blank: none)",
            elem_id="models-adapters",
            lines=2,
            max_length=8 * MAX_PATH_CHARS,
        )
        with gr.Row():
            endpoint = gr.Textbox(
                label="Endpoint URL (an OpenAI-compatible server; blank: generate here)",
                elem_id="models-endpoint",
                max_length=MAX_PATH_CHARS,
            )
            served_model = gr.Textbox(
                label="Served model id", elem_id="models-served-model", max_length=MAX_PATH_CHARS
            )
            api_key_env = gr.Textbox(
                label="API key: the environment variable's name (never the key)",
                elem_id="models-api-key-env",
                max_length=64,
            )
            lora_module = gr.Textbox(
                label="LoRA module name on the server (blank: none)",
                elem_id="models-lora-module",
                max_length=MAX_NAME_CHARS,
            )
        register = gr.Button("Register the variant", elem_id="models-register", variant="primary")
        result = gr.Markdown(elem_id="models-result")
        gr.Markdown(
            "**Where models run here** (generation, scoring, eval, arena and training runs; variants on an "
            "endpoint run there). *auto*: a CUDA GPU, then MPS, then the CPU. Changing it unloads the models."
        )
        with gr.Row():
            device = gr.Dropdown(
                choices=device_choices(),
                value=ctx.cfg.device if ctx.cfg.device in device_choices() else None,
                label="Run models on",
                elem_id="models-device",
                allow_custom_value=False,
            )
            apply_device = gr.Button("Use this device", elem_id="models-device-apply")
        device_result = gr.Markdown(elem_id="models-device-result")

    def on_models():
        return {table: variants_frame(ctx)}

    def on_register(name_v, base_v, adapters_v, endpoint_v, served_v, key_env_v, lora_v, request: gr.Request):
        # Admin only: register_variant checks the login before it reads anything else.
        try:
            serving = Serving(endpoint_v, served_v, key_env_v, lora_v)  # blanks read as not given
            spec = VariantSpec(name_v, base_v, tuple((adapters_v or "").splitlines()), serving=serving)
            row = register_variant(ctx, getattr(request, "username", None), spec)
        except PrefLabError as exc:
            warn(exc)
            return {result: md_text(f"Not registered: {exc}")}
        gr.Info(f"Registered {row.name}.")
        return {
            table: variants_frame(ctx),
            result: md_text(f"Registered {row.name} ({row.kind}). Pick it in Annotate → Generate pairs."),
        }

    def on_device(device_v, request: gr.Request):
        # Admin only: set_device checks the login before anything moves.
        try:
            plan = set_device(ctx, getattr(request, "username", None), device_v or "")
        except PrefLabError as exc:
            warn(exc)
            return {device_result: md_text(f"Device not changed: {exc}")}
        gr.Info(f"Models now run on {plan}.")
        return {table: variants_frame(ctx), device_result: md_text(f"Models now run on {plan}.")}

    apply_device.click(on_device, [device], [table, device_result], api_name="models_device")
    register.click(
        on_register,
        [name, base, adapters, endpoint, served_model, api_key_env, lora_module],
        [table, result],
        api_name="models_register",
    )
    demo.load(on_models, None, [table], api_name=False)
    if tab is not None:
        tab.select(on_models, None, [table], api_name=False, concurrency_limit=None)
