"""`train --include-judge` and the Train tab's "include judge labels" box build the same run config, in one function."""

from __future__ import annotations

import pytest

from train.config import config_to_dict
from train.service import dpo_config, judge_sources


def tab_config(tmp_path, monkeypatch, *form) -> object:
    """The config the Train tab's Start button hands to start_training, for the form values `form`."""
    import gradio as gr

    import train.service
    from common.context import AppConfig, Context
    from store import Store
    from train.ui import build_train_tab

    started = []
    monkeypatch.setattr(train.service, "start_training", lambda ctx, cfg, user=None: started.append(cfg) or 7)
    cfg = AppConfig(home=tmp_path / "home")
    cfg.paths.ensure()
    ctx = Context(cfg=cfg, store=Store.open(cfg.paths.db), generator=None, jobs=None)
    try:
        with gr.Blocks() as demo:
            build_train_tab(ctx, demo)
        (on_start,) = [f.fn for f in demo.fns.values() if f.fn.__qualname__.endswith("on_start")]
        on_start(*form, gr.Request(username=None))
    finally:
        ctx.store.close()
    (started_cfg,) = started
    return started_cfg


@pytest.mark.parametrize("preset", ["demo", "default"])
def test_the_cli_flag_and_the_tab_box_give_the_same_config(tmp_path, monkeypatch, preset):
    from launch import build_parser
    from train.cli import config_from_args

    cli = config_from_args(build_parser().parse_args(["train", "--preset", preset, "--include-judge"]))
    # The tab's form as it loads (0: the preset's value), with the box ticked.
    tab = tab_config(tmp_path, monkeypatch, preset, 0, 0, 0, "sigmoid", True, 1)
    assert tab.sources == cli.sources == ("human", "import", "judge")
    assert config_to_dict(tab) == config_to_dict(cli)
    assert config_to_dict(dpo_config(None, preset, {}, include_judge=True)) == config_to_dict(cli)


def test_without_the_box_the_judge_s_labels_stay_out(tmp_path, monkeypatch):
    tab = tab_config(tmp_path, monkeypatch, "demo", 0, 0, 0, "sigmoid", False, 1)
    assert tab.sources == ("human", "import") == dpo_config(None, "demo").sources


def test_the_judge_joins_the_sources_of_the_yaml_file(tmp_path):
    listed, text = tmp_path / "listed.yaml", tmp_path / "text.yaml"
    listed.write_text("sources: [human]\n")
    # Written the way the flag takes it: comma-separated text, not a list of its letters.
    text.write_text("sources: human,import\n")
    assert judge_sources(listed, "default") == ["human", "judge"]
    assert judge_sources(text, "default") == ["human", "import", "judge"]
    assert dpo_config(text, "demo", {}, include_judge=True).sources == ("human", "import", "judge")
    assert dpo_config(listed, "demo", {}).sources == ("human",)
