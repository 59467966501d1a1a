"""`launch.py models add ... --endpoint` and `models list`: one line per mistake, the key never shown."""

from __future__ import annotations

from launch import main


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_models_add_an_endpoint_variant_then_list_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "sk-do-not-print")
    home = ["--home", str(tmp_path)]
    rc = main(
        [*home, "models", "add", "big", "--endpoint", "http://gpu-box:8000", "--served-model", "acme/sft-70b"]
        + ["--api-key-env", "VLLM_API_KEY", "--lora-module", "sft-lora", "--revision", "abc123"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "registered big (sft): generates at http://gpu-box:8000/v1 as acme/sft-70b@abc123" in out
    assert main([*home, "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "generates at http://gpu-box:8000/v1" in out and "key from $VLLM_API_KEY" in out
    assert "sk-do-not-print" not in out


def test_an_existing_local_variant_gains_an_endpoint(tmp_path, capsys):
    home = ["--home", str(tmp_path)]
    rc = main(
        [*home, "models", "add", "base", "--endpoint", "http://127.0.0.1:8000/v1", "--served-model", "m"]
    )
    assert rc == 0
    assert "smollm2-135m-instruct; generates at http://127.0.0.1:8000/v1 as m" in capsys.readouterr().out


def test_models_add_mistakes_are_one_line_exit_2(tmp_path, capsys):
    home = ["--home", str(tmp_path)]
    cases = [
        (["--endpoint", "http://h:1/v1", "--served-model", "m", "--api-key-env", "HF_TOKEN"], "refused"),
        (
            ["--endpoint", "http://h:1/v1", "--served-model", "m", "--api-key-env", "ANTHROPIC_API_KEY"],
            "refused",
        ),
        (["--endpoint", "http://h:1/v1"], "--served-model"),
        (["--served-model", "m"], "need --endpoint"),
        (["--endpoint", "http://user:pw@h/v1", "--served-model", "m"], "user or password"),
        ([], "--base"),
    ]
    for flags, text in cases:
        assert main([*home, "models", "add", "x", *flags]) == 2
        assert text in _err(capsys)
