"""A CLI job stopped by SIGTERM (or Ctrl-C) ends cleanly: one line, exit code 130, its job row cancelled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from launch import main
from tests.serving import ROOT


def _tiny_variant(root: Path) -> Path:
    from transformers import AutoTokenizer

    from tests.models.tiny_models import build_tiny_model, build_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(root / "tokenizer"))
    target = root / "tiny-sft"
    build_tiny_model(tokenizer).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def test_sigterm_stops_a_cli_generation_cleanly_and_keeps_what_it_stored(tmp_path):
    from store import Store

    home = tmp_path / "home"
    n_prompts = 40
    with Store.open(home / "preflab.duckdb") as store:
        for i in range(n_prompts):
            store.add_prompt([{"role": "user", "content": f"Triage incident {i}: disk full"}], "t", "train")
        store.add_model("sft", str(_tiny_variant(tmp_path)), [], "sft")
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    child = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "launch.py"),
            "--home",
            str(home),
            "generate",
            "--max-new-tokens",
            "64",
            "--batch-size",
            "2",
            "--temperatures",
            "1.0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    seen = []
    try:
        # Off a terminal the CLI logs a progress line per tenth: the second one means work is committed.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = child.stderr.readline()
            if not line:
                break
            seen.append(line.rstrip())
            if "generating:" in line and not line.rstrip().endswith(f" 0/{2 * n_prompts} resp"):
                break
        assert seen and "generating:" in seen[-1], "\n".join(seen)
        child.send_signal(signal.SIGTERM)
        _out, rest = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    assert child.returncode == 130, rest
    assert "Traceback" not in rest, rest
    last = rest.strip().splitlines()[-1]
    assert "interrupted" in last and "resume" in last, rest
    with Store.open(home / "preflab.duckdb") as store:
        (job,) = store.jobs_with_status("generate", ("cancelled",))
        assert "interrupted" in (job.error or "")
        stored = store.counts()["generations"]
        assert 0 < stored < 2 * n_prompts


def test_ctrl_c_in_a_job_command_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    import annotate.generation

    def interrupted(*_a, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(annotate.generation, "run_generation", interrupted)
    from store import Store

    with Store.open(tmp_path / "preflab.duckdb") as store:
        store.add_model("sft", "tiny", [], "sft")
    before_term, before_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert main(["--home", str(tmp_path), "generate"]) == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "interrupted" in err and "Traceback" not in err, err
    with Store.open(tmp_path / "preflab.duckdb") as store:
        (job,) = store.jobs_with_status("generate", ("cancelled",))
    assert job.error and "interrupted" in job.error
    # The command's handlers are gone once it returns: the test process's own are back.
    assert signal.getsignal(signal.SIGTERM) is before_term and signal.getsignal(signal.SIGINT) is before_int
