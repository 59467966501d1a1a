"""Training honours the device: the worker's run config says where, and the pool leaves that GPU first."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from common.errors import UserInputError
from train.rundir import CONFIG, RunDir


class RecordingPool:
    def __init__(self):
        self.released = []

    def release_device(self, device):
        self.released.append(device)
        return 0


def test_training_start_frees_the_gpu_it_trains_on(tmp_path):
    from train.run_finish import release_device

    ctx = SimpleNamespace(generator=RecordingPool())
    rd = RunDir(tmp_path)
    rd.write_json(CONFIG, {"device": "cuda:0"})
    release_device(ctx, rd)
    assert ctx.generator.released == ["cuda:0"]
    rd.write_json(CONFIG, {"device": "cpu"})
    release_device(ctx, rd)  # the serving process and a CPU worker share the RAM: nothing to hand over
    assert ctx.generator.released == ["cuda:0"]


def test_worker_settings_follow_the_device():
    from train.run_prepare import device_settings

    cfg = SimpleNamespace(bf16=False, fp16=False)
    assert device_settings(cfg, "cuda:0", torch.bfloat16) == {
        "model_device": "cuda:0",
        "use_cpu": False,
        "bf16": True,
        "fp16": False,
    }
    assert device_settings(cfg, "cuda:0", torch.float16)["fp16"] is True
    assert device_settings(cfg, "cpu", torch.float32) == {"model_device": "cpu", "use_cpu": True}


def test_training_device_is_the_config_s_else_the_serving_one(monkeypatch):
    from train.run_prepare import training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    ctx = SimpleNamespace(cfg=SimpleNamespace(device="cpu"))
    assert training_device(ctx, SimpleNamespace(model_device="auto")) == "cpu"
    with pytest.raises(UserInputError, match="no usable CUDA GPU"):
        training_device(ctx, SimpleNamespace(model_device="cuda"))


def test_yaml_device_field(tmp_path):
    from train.config import load_config

    path = tmp_path / "run.yaml"
    path.write_text("device: cpu\n")
    cfg = load_config(path)
    assert cfg.model_device == "cpu" and cfg.use_cpu is True
    path.write_text("device: gpu\n")
    with pytest.raises(UserInputError, match="device must be one of"):
        load_config(path)
