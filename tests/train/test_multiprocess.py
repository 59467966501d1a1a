"""DPO with several worker processes: one run over 2 CPU processes (gloo) trains like 1 process over the same batch."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from common.errors import UserInputError
from tests.train.dpo_fixtures import in_process, make_ctx, tiny_config, tiny_sft  # noqa: F401
from train.process import worker_command
from train.rundir import METRICS, RunDir
from train.service import run_training

# 8 triples: 6 train (3 optimizer steps of a global batch of 2) and 2 validation; no shuffling, no KL, no dropout.
COMMON = {
    "max_steps": 3,
    "eval_steps": 100,
    "kl_every": 0,
    "min_train_pairs": 6,
    "min_val_pairs": 2,
    "val_fraction": 0.25,
    "gradient_accumulation_steps": 1,
    "train_sampling_strategy": "sequential",
}


@pytest.fixture
def ctx(tmp_path, tiny_sft):  # noqa: F811
    context = make_ctx(tmp_path / "home", tiny_sft, n_triples=8, heldout=0)
    yield context
    context.store.close()


def train_losses(rd: RunDir) -> dict[int, float]:
    rows = [json.loads(line) for line in (rd / METRICS).read_text().splitlines()]
    return {r["step"]: r["value"] for r in rows if (r["split"], r["name"]) == ("train", "loss")}


def metric_keys(rd: RunDir) -> Counter:
    rows = [json.loads(line) for line in (rd / METRICS).read_text().splitlines()]
    return Counter((r["step"], r["split"], r["name"]) for r in rows)


def test_two_processes_train_like_one_process_over_the_same_global_batch(ctx):
    two = run_training(ctx, tiny_config(per_device_train_batch_size=1, processes=2, **COMMON))
    assert two.status == "done", two.error
    rd = RunDir(two.run_dir)
    status = rd.read_status()
    assert status["world_size"] == 2, status
    # One adapter, saved once, registered once.
    assert sorted(p.name for p in rd.path.iterdir() if "adapter" in p.name) == ["adapter"]
    assert (rd.adapter / "adapter_model.safetensors").is_file()
    assert ctx.store.get_model(f"sft+dpo@{two.run_id}") is not None

    one = run_training(ctx, tiny_config(per_device_train_batch_size=2, processes=1, **COMMON))
    assert one.status == "done", one.error
    assert RunDir(one.run_dir).read_status()["world_size"] == 1
    # Metrics are logged by one process only: the same rows as the 1-process run, each metric once per step
    # ("epoch" rides along in every log row of the Trainer, the eval and the summary ones too).
    keys_two, keys_one = metric_keys(rd), metric_keys(RunDir(one.run_dir))
    assert keys_two == keys_one and ("eval", "rewards/margins") in {(s, n) for _, s, n in keys_two}
    assert [k for k, n in keys_two.items() if n > 1 and k[2] != "epoch"] == []
    frame = ctx.store.run_metrics_frame([two.run_id])
    assert len(frame) == len(keys_two)  # one row per (step, split, name) in the database
    losses_two, losses_one = train_losses(rd), train_losses(RunDir(one.run_dir))
    assert sorted(losses_two) == sorted(losses_one) == [1, 2, 3]
    for step in (1, 2, 3):
        assert losses_two[step] == pytest.approx(losses_one[step], abs=1e-4), (step, losses_two, losses_one)
    assert abs(losses_one[3] - losses_one[1]) > 1e-3  # the policy moved: equal losses are not trivially equal


def test_several_cpu_processes_start_under_torchrun_not_accelerate_cpu():
    # `accelerate launch --cpu --num_processes 2` starts a single process; torchrun starts them all (gloo).
    command = worker_command("RUN", processes=2, cpu=True)
    assert command[1:3] == ["-m", "torch.distributed.run"]
    assert "--nproc_per_node" in command and command[command.index("--nproc_per_node") + 1] == "2"
    assert command[-3:] == ["-m", "train.worker", "RUN"]
    assert worker_command("RUN", processes=1, cpu=True)[1:] == ["-m", "train.worker", "RUN"]


def test_gpus_start_under_accelerate_launch_with_the_config_file(tmp_path):
    config = tmp_path / "zero3.yaml"
    config.write_text("distributed_type: DEEPSPEED\nnum_processes: 8\n")
    command = worker_command("RUN", processes=4, accelerate_config=str(config), cpu=False)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--config_file") + 1] == str(config)
    assert command[command.index("--num_processes") + 1] == "4"
    plain = worker_command("RUN", processes=2, cpu=False)
    assert "--multi_gpu" in plain and "--config_file" not in plain


def test_an_accelerate_config_sets_the_process_count_unless_processes_is_given(tmp_path):
    config = tmp_path / "fsdp.yaml"
    config.write_text("distributed_type: FSDP\nnum_processes: 4\n")
    assert tiny_config(accelerate_config=str(config)).processes == 4
    assert tiny_config(accelerate_config=str(config), processes=2).processes == 2
    with pytest.raises(UserInputError, match="accelerate_config .*missing.yaml"):
        tiny_config(accelerate_config=str(tmp_path / "missing.yaml"))
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(UserInputError, match="accelerate_config"):
        tiny_config(accelerate_config=str(tmp_path / "list.yaml"))


def test_the_process_count_is_bounded(tmp_path):
    from train.config import MAX_PROCESSES

    with pytest.raises(UserInputError, match=f"processes must be an integer from 1 to {MAX_PROCESSES}"):
        tiny_config(processes=MAX_PROCESSES + 1)
    config = tmp_path / "huge.yaml"
    config.write_text(f"distributed_type: MULTI_GPU\nnum_processes: {MAX_PROCESSES * 10}\n")
    with pytest.raises(UserInputError, match="processes must be an integer"):
        tiny_config(accelerate_config=str(config))


def test_the_cli_flags_reach_the_config(tmp_path):
    import argparse

    from train.cli import add_train_arguments, config_from_args

    config = tmp_path / "ddp.yaml"
    config.write_text("distributed_type: MULTI_GPU\nnum_processes: 2\n")
    parser = add_train_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--processes", "3", "--accelerate-config", str(config)])
    cfg = config_from_args(args)
    assert (cfg.processes, cfg.accelerate_config) == (3, str(config))
    assert config_from_args(parser.parse_args([])).processes == 1


def test_load_in_4bit_is_refused_in_one_line_without_a_gpu_or_bitsandbytes():
    with pytest.raises(UserInputError) as caught:
        tiny_config(load_in_4bit=True)
    message = str(caught.value)
    assert "\n" not in message and "load_in_4bit" in message
    assert "CUDA GPU" in message or "bitsandbytes" in message


def test_load_in_4bit_is_refused_by_the_cli_with_exit_code_2(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "launch.py", "--home", str(tmp_path / "home"), "train", "--load-in-4bit"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the store's INFO lines on opening a fresh home
    assert last.startswith("error: load_in_4bit needs") and "Traceback" not in done.stderr, done.stderr


def test_qlora_loads_the_variant_in_4bit_where_bitsandbytes_runs(tiny_sft, tmp_path):  # noqa: F811
    torch = pytest.importorskip("torch")
    pytest.importorskip("bitsandbytes")
    if not torch.cuda.is_available():
        pytest.skip("bitsandbytes 4-bit needs a CUDA GPU")
    from train.worker import load_reference

    spec = {
        "variant": {"name": "sft", "base": str(tiny_sft.base), "adapters": [str(tiny_sft.adapter)]},
        "models_dir": str(tmp_path / "models"),
        "dtype": "float32",
    }
    local = load_reference(spec, load_in_4bit=True)
    assert getattr(local.model, "is_loaded_in_4bit", False)
    assert local.model.device.type == "cuda"


def test_the_train_tab_starts_a_run_with_the_processes_it_shows(tmp_path, tiny_sft, monkeypatch):  # noqa: F811
    import gradio as gr

    import train.service
    from train.ui import build_train_tab

    started = []
    monkeypatch.setattr(train.service, "start_training", lambda ctx, cfg, user=None: started.append(cfg) or 7)
    ctx = make_ctx(tmp_path / "home", tiny_sft)
    try:
        with gr.Blocks() as demo:
            build_train_tab(ctx, demo)
        (on_start,) = [f.fn for f in demo.fns.values() if f.fn.__qualname__.endswith("on_start")]
        on_start("demo", 0, 0, 0, "sigmoid", False, 2, gr.Request(username=None))
        on_start("demo", 0, 0, 0, "sigmoid", False, None, gr.Request(username=None))
    finally:
        ctx.store.close()
    assert [cfg.processes for cfg in started] == [2, 1]
