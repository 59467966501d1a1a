"""Every flag generated from a settings dataclass has that field's help and default (issue 13: one source per flag).

The drift the hand-written parsers had is pinned here: `sft --batch-size` said "default 8" while 4 ran, `sft
--epochs` was 1 on the CLI while the dataclass said 2, and five `export` flags had no help at all.
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from common.flags import HelpFormatter, default_text, field_default
from launch import build_parser
from train.sft_config import SFTRunConfig

# The commands whose settings live in a dataclass, and the fields their flags set.
GENERATED = {
    "sft": {"epochs", "learning_rate", "batch_size", "limit"},
    "generate": {
        "variant", "split", "limit", "per_prompt", "temperatures", "top_p", "max_new_tokens", "batch_size",
        "concurrency", "strategy", "seed",
    },
    "train": {
        "variant", "beta", "learning_rate", "num_train_epochs", "loss_type", "limit", "max_steps", "report_to",
        "activation_checkpointing", "processes", "accelerate_config", "load_in_4bit",
    },
    "eval": {"temperature", "top_p", "max_new_tokens", "seed"},
    "export": {"sources", "annotators", "since", "until", "agreement", "ties"},
    "import": {"data_bytes", "line_bytes", "cell_bytes"},
    "models add": {"base", "adapters", "kind", "endpoint", "served_model", "api_key_env", "lora_module", "revision"},
}  # fmt: skip


def _commands(
    parser: argparse.ArgumentParser | None = None, prefix: str = ""
) -> dict[str, argparse.ArgumentParser]:
    """Every command and subcommand ("models add") by name."""
    commands = {}
    for action in (parser or build_parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                commands[prefix + name] = child
                commands.update(_commands(child, f"{prefix}{name} "))
    return commands


def _generated(command: str) -> dict[str, argparse.Action]:
    return {a.setting.name: a for a in _commands()[command]._actions if hasattr(a, "setting")}


@pytest.mark.parametrize("command", sorted(GENERATED))
def test_every_generated_flag_has_its_fields_help_and_default(command):
    actions = _generated(command)
    assert set(actions) == GENERATED[command]
    for name, action in actions.items():
        field = action.setting
        assert action.help == field.metadata["help"] and action.help, (command, name)
        value = field_default(field)
        if action.default is None:  # a layered or repeatable flag: the dataclass fills the field
            assert action.shown_default in (default_text(value), _shown(value)), (command, name)
        elif isinstance(value, tuple):  # given as comma-separated text
            assert action.default == default_text(value), (command, name)
        else:
            assert action.default == value and type(action.default) is type(value), (command, name)
        if field.metadata.get("choices"):
            assert list(action.choices) == list(field.metadata["choices"]), (command, name)


def _shown(value) -> str:
    from annotate.import_limits import size_text

    return size_text(value) if isinstance(value, int) and value > 1024 else default_text(value)


def test_sft_defaults_are_what_runs():
    args = build_parser().parse_args(["sft"])
    ran = SFTRunConfig(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size)
    assert ran == SFTRunConfig()
    assert (args.epochs, args.batch_size, args.lr) == (1, 4, 2e-4)
    fields = {f.name: f for f in dataclasses.fields(SFTRunConfig)}
    assert fields["epochs"].default == 1  # what the CLI and the Train tab have always run
    help_text = _commands()["sft"].format_help()
    assert "default 8" not in help_text
    assert "(default 4)" in help_text and "(default 1)" in help_text


def test_every_flag_of_every_command_has_help():
    missing = [
        (name, action.option_strings)
        for name, parser in _commands().items()
        for action in parser._actions
        if action.option_strings and not action.help
    ]
    assert missing == []


def test_help_shows_the_dataclass_default_once():
    formatter = HelpFormatter("x")
    train = _generated("train")
    assert formatter._get_help_string(train["learning_rate"]) == "Peak AdamW learning rate (default 5e-06)."
    # Help that already names its default is left alone; '%' survives argparse's formatting.
    assert "default" not in train["activation_checkpointing"].help.lower()
    assert "~20% slower" in _commands()["train"].format_help()


def test_train_flags_not_given_leave_the_yaml_and_preset_their_say(tmp_path):
    from train.cli import config_from_args

    parser = _commands()["train"]
    path = tmp_path / "dpo.yaml"
    path.write_text("beta: 0.3\n")
    cfg = config_from_args(parser.parse_args(["--config", str(path), "--preset", "demo"]))
    assert (cfg.beta, cfg.learning_rate) == (0.3, 1e-4)  # the YAML, the preset
    cfg = config_from_args(
        parser.parse_args(["--config", str(path), "--lr", "2e-5", "--gradient-checkpointing"])
    )
    assert (cfg.beta, cfg.learning_rate, cfg.activation_checkpointing) == (0.3, 2e-5, True)
