"""Device and dtype resolution with faked hardware: `auto` picks CUDA, then MPS, then the CPU."""

from __future__ import annotations

import pytest
import torch

from common.errors import UserInputError
from models import devices
from models.devices import Placement, check_device, check_dtype, describe, describe_plan, resolve


@pytest.fixture
def hardware(monkeypatch):
    """Fake what torch reports: `set(cuda=2, bf16=True, mps=False)`."""

    class Fake:
        def set(self, *, cuda: int = 0, bf16: bool = True, mps: bool = False):
            monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
            monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
            monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
            monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
            monkeypatch.setattr(torch.cuda, "device", lambda *_a: _Null())
            monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
            monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda *_a: True)
            return self

    return Fake()


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_auto_prefers_cuda_then_mps_then_cpu(hardware):
    hardware.set(cuda=1, mps=True)
    assert resolve("auto") == Placement("cuda:0", "bfloat16")
    hardware.set(cuda=0, mps=True)
    assert resolve("auto") == Placement("mps", "bfloat16")
    hardware.set(cuda=0, mps=False)
    assert resolve() == Placement("cpu", "auto")


def test_auto_dtype_is_bf16_where_supported_else_fp16(hardware):
    hardware.set(cuda=2, bf16=True)
    assert resolve("cuda:1", "auto").dtype == "bfloat16"
    hardware.set(cuda=2, bf16=False)
    assert resolve("cuda", "auto") == Placement("cuda:0", "float16")
    # An explicit dtype wins everywhere.
    assert resolve("cuda:1", "fp32") == Placement("cuda:1", "float32")


def test_cpu_keeps_the_checkpoint_dtype(hardware):
    """On the CPU `auto` loads what it loaded before: fingerprints and reference caches stay valid."""
    hardware.set(cuda=1)
    assert resolve("cpu", "auto") == Placement("cpu", "auto")
    assert resolve("cpu", None).dtype == "auto"
    assert devices.torch_dtype("auto") == "auto"
    assert devices.torch_dtype("bf16") is torch.bfloat16


def test_missing_hardware_is_one_clear_line(hardware):
    hardware.set(cuda=0, mps=False)
    with pytest.raises(UserInputError, match="no usable CUDA GPU"):
        resolve("cuda")
    with pytest.raises(UserInputError, match="MPS is not available"):
        resolve("mps")
    hardware.set(cuda=2)
    with pytest.raises(UserInputError, match="has 2 CUDA GPU"):
        resolve("cuda:2")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "tpu", "cuda:"])
def test_bad_device_names_are_refused(bad):
    with pytest.raises(UserInputError, match="device must be one of"):
        check_device(bad)


def test_dtype_names_and_aliases():
    assert check_dtype("bf16") == "bfloat16"
    assert check_dtype(torch.float64) == "float64"
    assert check_dtype(None) == "auto"
    with pytest.raises(UserInputError, match="dtype must be one of"):
        check_dtype("int8")


def test_device_map_auto_only_on_accelerators(hardware):
    hardware.set(cuda=1)
    assert resolve("cuda", None, "auto").device_map == "auto"
    hardware.set(cuda=0)
    assert resolve("cpu", None, "auto").device_map is None
    with pytest.raises(UserInputError, match="device map"):
        resolve("cpu", None, "balanced")


def test_a_model_too_big_for_the_gpu_gets_a_device_map(hardware, monkeypatch, tmp_path):
    hardware.set(cuda=1)
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *_a: (10_000, 20_000))
    assert devices.device_map_for(Placement("cuda:0", "bfloat16"), tmp_path) is None
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *_a: (900, 20_000))
    assert devices.device_map_for(Placement("cuda:0", "bfloat16"), tmp_path) == "auto"
    assert devices.device_map_for(Placement("cpu"), tmp_path) is None


def test_describe_says_where_a_model_runs(local_model):
    assert describe(local_model) == "tiny on cpu, fp64"
    assert local_model.where == "tiny on cpu, fp64"
    assert describe_plan(Placement("cuda:0", "bfloat16")) == "cuda:0, bf16"
    assert describe_plan(Placement("cpu")) == "cpu, checkpoint dtype"


def test_load_variant_honours_device_and_dtype(base_dir, tmp_path, hardware):
    from models.local import Variant, load_variant

    hardware.set(cuda=0)
    loaded = load_variant(Variant("base", str(base_dir)), cache_dir=tmp_path, device="auto", dtype="fp32")
    assert loaded.where == "base on cpu, fp32"
    assert (
        load_variant(Variant("b", str(base_dir)), cache_dir=tmp_path, device="auto").model.dtype
        == torch.float64
    )


def test_models_list_says_where_models_run(tmp_path, capsys, hardware):
    from launch import main

    hardware.set(cuda=0)
    assert main(["--home", str(tmp_path), "--device", "cpu", "--dtype", "bf16", "models", "list"]) == 0
    assert "runs on this server: cpu, bf16 (loaded on first use)" in capsys.readouterr().out
    assert main(["--home", str(tmp_path), "--device", "gpu", "models", "list"]) == 2
    assert "device must be one of" in capsys.readouterr().err


def test_the_devices_a_user_can_pick(hardware):
    hardware.set(cuda=0, mps=False)
    assert devices.available_devices() == ["auto", "cpu"]
    hardware.set(cuda=2, mps=False)
    assert devices.available_devices() == ["auto", "cpu", "cuda:0", "cuda:1"]
    hardware.set(cuda=0, mps=True)
    assert devices.available_devices() == ["auto", "cpu", "mps"]


def test_the_pool_moves_to_another_device_and_frees_what_it_holds(base_dir, tmp_path, hardware):
    from models.local import Variant
    from models.pool import ModelPool

    hardware.set(cuda=2, bf16=True)
    pool = ModelPool({"base": Variant("base", str(base_dir))}.__getitem__, tmp_path / "c", device="cpu")
    pool.get("base")
    with pytest.raises(UserInputError, match="has 2 CUDA GPU"):
        pool.move_to("cuda:5")
    assert pool.loaded() == ["base"] and pool.plan().startswith("cpu")  # a refused move changes nothing
    assert pool.move_to("cuda:1") == "cuda:1, bf16"
    assert pool.loaded() == []


def _admin_context(tmp_path):
    from common.access import Access, Role, User
    from common.context import AppConfig, build_context
    from models.judge import make_judge

    ctx = build_context(AppConfig(home=tmp_path / "home"), judge=make_judge("rule"))
    ctx.access = Access((User("ann", "pw", Role.ANNOTATOR), User("boss", "pw", Role.ADMIN)))
    return ctx


def test_an_admin_picks_the_device_from_the_ui_service(tmp_path, hardware):
    from annotate.models_service import set_device
    from common.errors import PermissionDeniedError

    hardware.set(cuda=2, bf16=True)
    ctx = _admin_context(tmp_path)
    try:
        with pytest.raises(PermissionDeniedError):
            set_device(ctx, "ann", "cuda:1")
        with pytest.raises(UserInputError, match="has 2 CUDA GPU"):
            set_device(ctx, "boss", "cuda:7")
        with pytest.raises(UserInputError, match="device must be one of"):
            set_device(ctx, "boss", "tpu")
        assert ctx.cfg.device == "auto" and ctx.generator.plan() == "cuda:0, bf16"  # nothing changed
        assert set_device(ctx, "boss", "cuda:1") == "cuda:1, bf16"
        assert ctx.cfg.device == "cuda:1" and ctx.generator.plan() == "cuda:1, bf16"
    finally:
        ctx.store.close()


def test_the_device_does_not_change_under_a_running_job(tmp_path, hardware):
    import threading

    from annotate.models_service import set_device

    hardware.set(cuda=2, bf16=True)
    ctx = _admin_context(tmp_path)
    release = threading.Event()
    try:
        job = ctx.jobs.start("eval", {}, lambda handle: release.wait(60) and {})
        with pytest.raises(UserInputError, match=f"job #{job} is running"):
            set_device(ctx, "boss", "cpu")
        assert ctx.cfg.device == "auto"
        release.set()
        ctx.jobs.wait(job, timeout=60)
        assert set_device(ctx, "boss", "cpu") == "cpu, checkpoint dtype"
    finally:
        release.set()
        ctx.store.close()
