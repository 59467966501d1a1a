"""The CLI contract: help everywhere, one-line errors with exit code 2, models and stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.access import Role, parse_auth
from common.errors import UserInputError
from launch import main
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


@pytest.mark.parametrize(
    "argv",
    [
        ["sft", "--batch-size", "four"],
        ["generate", "--split", "test"],
        ["train", "--lr", "fast"],
        ["eval", "--top-p", "most"],
        ["export", "--ties", "maybe"],
    ],
)
def test_bad_values_of_generated_flags_are_one_line_exit_2(argv, tmp_path, capsys):
    assert main(["--home", str(tmp_path), *argv]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"error: launch.py {argv[0]}: argument {argv[1]}"), err


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


def test_judge_accept_is_one_summary_line_and_stores_judge_labels(tmp_path, capsys):
    from store import Store
    from tests.annotate.test_stats_judging import _pairs

    with Store.open(tmp_path / "preflab.duckdb") as store:
        _pairs(store, 4)
    assert main(["--home", str(tmp_path), "judge", "--judge", "rule", "--accept"]) == 0
    assert capsys.readouterr().out == (
        "rule-based judge: judged 4 pairs in both orders: 4 consistent, 0 position-inconsistent, 0 failed; "
        "4 accepted as judge labels\n"
    )
    with Store.open(tmp_path / "preflab.duckdb") as store:
        assert [t.source for t in store.preference_triples()] == ["judge"] * 4


def test_judge_with_an_unreadable_rubric_stops_before_opening_the_home(tmp_path, capsys):
    home = tmp_path / "home"
    assert main(["--home", str(home), "judge", "--rubric", str(tmp_path / "missing.md")]) == 2
    assert "missing.md" in _one_line_error(capsys)
    assert not (home / "preflab.duckdb").exists()


def test_sft_of_a_missing_base_is_one_line_and_starts_no_job(tmp_path, capsys):
    from common.vocab import JobStatus
    from store import Store

    assert main(["--home", str(tmp_path), "sft", "--base", "nope"]) == 2
    assert "'nope'" in _one_line_error(capsys)
    with Store.open(tmp_path / "preflab.duckdb") as store:
        assert store.jobs_with_status("train", tuple(JobStatus)) == []


def test_stats_json(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "stats", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["prompts"] == 0 and report["counts"]["models"] == 1
    assert report["judge_human_agreement"]["suggestion_shown"]["n"] == 0


def test_auth_parsing_gives_roles(tmp_path):
    access = parse_auth("ann:secret:with-colon")
    assert [(u.name, u.password, u.role) for u in access.users] == [("ann", "secret:with-colon", Role.ADMIN)]
    f = tmp_path / "users.txt"
    f.write_text("# the team\nann:one\n\nbob:two:with-colon\ncarol:three:admin\ndan:four:annotator\n")
    users = {u.name: (u.password, u.role) for u in parse_auth(str(f)).users}
    assert users == {
        "ann": ("one", Role.ANNOTATOR),
        "bob": ("two:with-colon", Role.ANNOTATOR),  # not a role name: part of the password
        "carol": ("three", Role.ADMIN),
        "dan": ("four", Role.ANNOTATOR),
    }
    with pytest.raises(UserInputError):
        parse_auth("no-colon-here")
    assert not parse_auth(None).enabled and parse_auth(None).role(None) is Role.ADMIN


def test_serve_passes_the_users_and_their_roles_to_the_app(tmp_path, monkeypatch, capsys):
    import webui.app as app

    seen = {}

    def fake_launch(ctx, *, host, port, auth=None, block=True):
        seen.update(access=ctx.access, auth=auth, host=host)

    monkeypatch.setattr(app, "launch_app", fake_launch)
    users = tmp_path / "users.txt"
    users.write_text("ann:pw-one\nroot:pw-two:admin\n")
    assert main(["--home", str(tmp_path / "h"), "serve", "--auth", str(users)]) == 0
    assert seen["auth"] == [("ann", "pw-one"), ("root", "pw-two")]
    assert seen["access"].role("ann") is Role.ANNOTATOR and seen["access"].role("root") is Role.ADMIN
    assert "warning" not in capsys.readouterr().err.lower()


def test_serving_beyond_loopback_without_auth_warns(tmp_path, monkeypatch, capsys):
    import webui.app as app

    monkeypatch.setattr(app, "launch_app", lambda ctx, **kw: None)
    assert main(["--home", str(tmp_path / "h"), "serve", "--host", "0.0.0.0"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err.lower() and "--auth" in err
    for host in ("127.0.0.1", "localhost", "::1"):
        assert main(["--home", str(tmp_path / "h"), "serve", "--host", host]) == 0
        assert "warning" not in capsys.readouterr().err.lower(), host
    assert main(["--home", str(tmp_path / "h"), "serve", "--host", "0.0.0.0", "--auth", "a:b"]) == 0
    assert "warning" not in capsys.readouterr().err.lower()


def test_lock_error_names_the_program_never_its_arguments(tmp_path):
    import subprocess
    import sys
    import time

    import duckdb

    from store.db import locked_error

    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "serve", "--auth", "alice:hunter2-secret"]
    )
    try:
        # Popen can return before the child's exec has filled /proc/PID/cmdline: wait for it (a real
        # `serve` holding the database has long been running).
        cmdline = Path(f"/proc/{holder.pid}/cmdline")
        for _ in range(500):
            if b"serve" in cmdline.read_bytes():
                break
            time.sleep(0.01)
        exc = duckdb.IOException(
            f'IO Error: Could not set lock on file "x": Conflicting lock is held in {sys.executable} '
            f"(PID {holder.pid}) by user me."
        )
        text = str(locked_error(str(tmp_path / "x.duckdb"), exc))
    finally:
        holder.kill()
        holder.wait()
    assert str(holder.pid) in text and "serving the UI" in text, text
    assert "hunter2" not in text and "--auth" not in text and "alice" not in text, text


def test_cli_refuses_database_held_by_serve(tmp_path):
    home = tmp_path / "home"
    with serving(home, "--auth", "alice:hunter2-secret") as (_url, proc):
        result = run_cli("stats", home=home)
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert str(proc.pid) in err and "serving the UI" in err
    assert "hunter2" not in err and "alice" not in err


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
