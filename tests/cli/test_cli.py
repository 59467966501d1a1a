"""The CLI contract: help everywhere, one-line errors with exit code 2, models and stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from errors import UserInputError
from launch import main, parse_auth
from tests.serving import run_cli, serving

ALL_COMMANDS = ["serve", "models", "import", "sft", "generate", "judge", "train", "eval", "export", "stats"]


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "Traceback" not in err
    return err


def test_unknown_command_is_one_line_exit_2(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "frobnicate"]) == 2
    assert "invalid choice" in _one_line_error(capsys)


def test_bad_flag_value_is_one_line_exit_2(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "serve", "--port", "eighty"]) == 2
    assert "--port" in _one_line_error(capsys)


def test_train_without_triples_is_one_line(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "models", "add", "sft", "--base", "smollm2-135m-instruct"]) == 0
    capsys.readouterr()
    assert main(["--home", str(tmp_path), "train", "--preset", "demo"]) == 2
    err = _one_line_error(capsys)
    assert "triples" in err


def test_models_list_registers_default_base(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "base" in out and "smollm2" in out.lower()


def test_models_add_and_duplicate(tmp_path, capsys):
    adapter = tmp_path / "my-sft"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    home = str(tmp_path / "home")
    assert (
        main(
            [
                "--home",
                home,
                "models",
                "add",
                "sft",
                "--base",
                "smollm2-135m-instruct",
                "--adapter",
                str(adapter),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["--home", home, "models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "sft" in listing and str(adapter) in listing
    assert main(["--home", home, "models", "add", "sft", "--base", "smollm2-135m-instruct"]) == 2
    assert "sft" in _one_line_error(capsys)


def test_models_add_missing_adapter_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert (
        main(
            [
                "--home",
                str(tmp_path),
                "models",
                "add",
                "sft",
                "--base",
                "smollm2-135m-instruct",
                "--adapter",
                str(missing),
            ]
        )
        == 2
    )
    assert "nope" in _one_line_error(capsys)
    assert main(["--home", str(tmp_path), "models", "list"]) == 0
    assert "\nsft " not in capsys.readouterr().out  # nothing half-registered


def test_stats_json(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "stats", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["prompts"] == 0 and report["counts"]["models"] == 1
    assert report["judge_human_agreement"]["suggestion_shown"]["n"] == 0


def test_auth_parsing(tmp_path):
    assert parse_auth("ann:secret") == [("ann", "secret")]
    f = tmp_path / "users.txt"
    f.write_text("# annotators\nann:one\n\nbob:two:with-colon\n")
    assert parse_auth(str(f)) == [("ann", "one"), ("bob", "two:with-colon")]
    with pytest.raises(UserInputError):
        parse_auth("no-colon-here")


def test_cli_refuses_database_held_by_serve(tmp_path):
    home = tmp_path / "home"
    with serving(home) as (_url, proc):
        result = run_cli("stats", home=home)
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert str(proc.pid) in err and "serve" in err


def test_import_demo_prompts_then_again_adds_nothing(tmp_path, capsys):
    demo = str(Path(__file__).resolve().parents[2] / "data" / "incidents.jsonl")
    assert main(["--home", str(tmp_path), "import", demo]) == 0
    assert "340 imported" in capsys.readouterr().out
    assert main(["--home", str(tmp_path), "import", demo]) == 0
    assert "0 imported" in capsys.readouterr().out


def test_import_bad_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"nope": 1}\n')
    assert main(["--home", str(tmp_path / "h"), "import", str(bad)]) == 2
    err = _one_line_error(capsys)
    assert "bad.jsonl" in err and "2" in err
    assert main(["--home", str(tmp_path / "h"), "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["prompts"] == 0
