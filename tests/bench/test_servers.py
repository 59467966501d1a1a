"""bench/servers.py, the start/probe/stop loop the benches and the served tests share: what a failure says."""

from __future__ import annotations

import sys

import pytest

from bench.servers import ServerFailed, child_env, running


def test_a_server_that_exits_fails_with_its_exit_code_and_the_end_of_its_log(tmp_path):
    log = tmp_path / "server.log"
    command = [sys.executable, "-c", "import sys; print('port already taken'); sys.exit(3)"]
    with pytest.raises(ServerFailed) as failed:
        with running(command, log_path=log, ready=lambda: False, timeout=60, name="toy", poll=0.05):
            pytest.fail("a server that never answered was yielded")
    assert str(failed.value).startswith("toy exited with 3:\n")
    assert "port already taken" in str(failed.value)
    assert failed.value.short() == f"toy exited with 3 (log: {log})"


def test_a_server_that_never_answers_is_stopped_at_the_deadline(tmp_path):
    command = [sys.executable, "-c", "import time; time.sleep(600)"]
    with pytest.raises(ServerFailed, match=r"^toy did not answer in 0 s") as failed:
        with running(
            command, log_path=tmp_path / "s.log", ready=lambda: False, timeout=0.2, name="toy", poll=0.05
        ):
            pass
    assert "did not answer" in failed.value.short()


def test_the_block_runs_once_ready_and_the_process_is_stopped_after(tmp_path):
    command = [sys.executable, "-c", "import time; time.sleep(600)"]
    with running(command, log_path=tmp_path / "s.log", ready=lambda: True, timeout=5) as proc:
        assert proc.poll() is None
    assert proc.poll() is not None


def test_servers_get_no_secrets(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    env = child_env(TQDM_DISABLE="1")
    assert "ANTHROPIC_API_KEY" not in env and "HF_TOKEN" not in env and env["TQDM_DISABLE"] == "1"
