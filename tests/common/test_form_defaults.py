"""The UI forms start from the same defaults as the flags: both read the settings dataclasses."""

from annotate.generation import GenerateConfig
from evaluate.responses import ResponseParams
from train.config import PrefLabFields
from train.sft_config import SFTRunConfig

FORM_DEFAULTS = {
    "generate-max-tokens": GenerateConfig.max_new_tokens,
    "sft-epochs": SFTRunConfig.epochs,
    "train-processes": PrefLabFields.processes,
    "eval-max-tokens": ResponseParams.max_new_tokens,
}


def test_form_fields_start_at_the_dataclass_defaults(tmp_path):
    from common.context import AppConfig, build_context
    from webui.app import build_app

    ctx = build_context(AppConfig(home=tmp_path / "home"))
    try:
        components = build_app(ctx).get_config_file()["components"]
    finally:
        ctx.store.close()
    shown = {c["props"].get("elem_id"): c["props"].get("value") for c in components}
    assert {elem: shown.get(elem) for elem in FORM_DEFAULTS} == FORM_DEFAULTS
