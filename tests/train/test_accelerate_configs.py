"""The shipped accelerate configs parse, validate with accelerate's own launcher code, and tell the worker what it needs.

DeepSpeed and several GPUs are not on this machine: these tests stop where `accelerate launch` would start processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from train.process import worker_command

CONFIGS = Path(__file__).resolve().parents[2] / "train" / "accelerate_configs"
REQUIRED = {
    "compute_environment",
    "distributed_type",
    "num_processes",
    "mixed_precision",
    "num_machines",
    "use_cpu",
}
EXPECTED = {
    "multi_gpu.yaml": ("MULTI_GPU", None),
    "deepspeed_zero2.yaml": ("DEEPSPEED", 2),
    "deepspeed_zero3.yaml": ("DEEPSPEED", 3),
    "fsdp.yaml": ("FSDP", None),
}


def launch_args(path: Path, processes: int = 4):
    """What `accelerate launch` makes of the worker command for `path`, validated as accelerate does."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    command = worker_command("RUN", processes=processes, accelerate_config=str(path), cpu=False)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(command[3:])
    args, defaults, mp_from_config = _validate_launch_command(args)
    return args, defaults, mp_from_config


def worker_env_of(args, defaults, mp_from_config) -> dict[str, str]:
    """The environment accelerate hands each worker process (as launch_command builds it, minus the launch)."""
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config.keys()) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        return prepare_deepspeed_cmd_env(args)[1]
    return prepare_multi_gpu_env(args)


def test_every_documented_config_is_shipped():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_parses_with_the_required_keys(name):
    data = yaml.safe_load((CONFIGS / name).read_text())
    assert REQUIRED <= data.keys(), REQUIRED - data.keys()
    kind, stage = EXPECTED[name]
    assert data["distributed_type"] == kind and data["use_cpu"] is False and data["mixed_precision"] == "bf16"
    if kind == "DEEPSPEED":
        ds = data["deepspeed_config"]
        assert ds["zero_stage"] == stage
        # The worker loads, merges and fingerprints the whole variant on every process before DeepSpeed shards it.
        assert ds["zero3_init_flag"] is False
        if stage == 3:
            assert ds["zero3_save_16bit_model"] is True  # else the saved adapter would be empty shards
    if kind == "FSDP":
        fsdp = data["fsdp_config"]
        assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        assert fsdp["fsdp_cpu_ram_efficient_loading"] is False
        assert fsdp["fsdp_version"] == 2


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_loads_and_validates_the_config(name):
    from accelerate.commands.config.config_args import load_config_from_file

    cluster = load_config_from_file(str(CONFIGS / name))
    assert str(cluster.distributed_type).split(".")[-1] == EXPECTED[name][0]
    args, defaults, mp_from_config = launch_args(CONFIGS / name, processes=4)
    assert args.num_processes == 4  # --processes overrides the file
    assert (args.module, args.training_script, args.training_script_args) == (True, "train.worker", ["RUN"])
    assert args.mixed_precision == "bf16"
    env = worker_env_of(args, defaults, mp_from_config)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    kind, stage = EXPECTED[name]
    # What the worker reads to turn the one-process KL estimate off when the weights are sharded.
    from train import worker

    sharded = kind == "FSDP" or stage == 3
    assert (env.get("ACCELERATE_USE_FSDP") == "true") == (kind == "FSDP")
    if kind == "DEEPSPEED":
        assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(stage)
        assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "false"
    keys = ("ACCELERATE_USE_FSDP", "ACCELERATE_DEEPSPEED_ZERO_STAGE")
    with pytest.MonkeyPatch.context() as mp:
        for key in keys:
            mp.delenv(key, raising=False)
            if key in env:
                mp.setenv(key, env[key])
        assert worker._sharded_weights() is sharded


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_run_takes_its_process_count_and_precision_from_the_config(name):
    from tests.train.dpo_fixtures import tiny_config

    cfg = tiny_config(accelerate_config=str(CONFIGS / name), use_cpu=True)
    assert cfg.processes == 2 and cfg.accelerate_config == str(CONFIGS / name)
    assert cfg.bf16 is True  # the file's mixed_precision: bf16, so the Trainer and DeepSpeed agree
    assert tiny_config(accelerate_config=str(CONFIGS / name), processes=8, use_cpu=True).processes == 8
