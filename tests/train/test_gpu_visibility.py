"""A single-process training worker on cuda:N sees only GPU N (as its cuda:0), as torch and the Trainer expect."""

import sys
import time

import pytest

import train.process as process
from common.errors import UserInputError
from train.rundir import CONFIG, RunDir
from train.worker import _device


@pytest.mark.parametrize(
    ("device", "environ", "visible"),
    [
        ("cuda:1", {}, "1"),
        ("cuda", {}, "0"),
        ("cuda:0", {}, "0"),
        ("cuda:1", {"CUDA_VISIBLE_DEVICES": "4,5"}, "5"),  # an index counts within what this process sees
        ("cuda:0", {"CUDA_VISIBLE_DEVICES": "GPU-abc, GPU-def"}, "GPU-abc"),
    ],
)
def test_a_cuda_device_masks_every_other_gpu(device, environ, visible):
    env = process.single_gpu_env(device, environ)
    assert env == {"CUDA_VISIBLE_DEVICES": visible, process.WORKER_DEVICE_ENV: "cuda:0"}


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_other_devices_change_nothing(device):
    assert process.single_gpu_env(device, {"CUDA_VISIBLE_DEVICES": "3"}) == {}


def test_a_gpu_beyond_the_visible_ones_is_one_clear_error():
    with pytest.raises(UserInputError, match=r"cuda:2 does not exist.*shows 2 GPU"):
        process.single_gpu_env("cuda:2", {"CUDA_VISIBLE_DEVICES": "0,1"})


def test_the_worker_loads_on_the_masked_device(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv(process.WORKER_DEVICE_ENV, "cuda:0")
    assert _device({"device": "cuda:3"}) == "cuda:0"
    monkeypatch.delenv(process.WORKER_DEVICE_ENV)
    assert _device({"device": "cuda:3"}) == "cuda:3"


def _spawned_env(tmp_path, monkeypatch, device):
    """Start the plain worker (its command swapped for one that prints what it sees) for a run on `device`."""
    rd = RunDir(tmp_path)
    rd.write_json(CONFIG, {"device": device})
    script = (
        "import os; print(os.environ.get('CUDA_VISIBLE_DEVICES'), os.environ.get('PREFLAB_WORKER_DEVICE'))"
    )
    monkeypatch.setattr(process, "worker_command", lambda run_dir: [sys.executable, "-c", script])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    proc = process.spawn_worker(tmp_path)
    assert proc.wait(timeout=60) == 0
    deadline = time.time() + 5
    while not rd.log_path.read_text().strip() and time.time() < deadline:
        time.sleep(0.05)
    return rd.log_path.read_text().split()


def test_the_spawned_single_worker_sees_only_its_gpu(tmp_path, monkeypatch):
    assert _spawned_env(tmp_path, monkeypatch, "cuda:2") == ["2", "cuda:0"]


def test_a_cpu_worker_is_not_masked(tmp_path, monkeypatch):
    assert _spawned_env(tmp_path, monkeypatch, "cpu") == ["None", "None"]
