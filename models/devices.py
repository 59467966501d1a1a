"""Where a model runs: `--device auto|cpu|cuda|cuda:N|mps`, `--dtype auto|...`, device maps, memory budgets."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserInputError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPES = ("auto", "float32", "float64", "float16", "bfloat16")
DTYPE_ALIASES = {
    "fp32": "float32",
    "fp64": "float64",
    "fp16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
}
DEVICE_MAPS = ("auto",)
SHORT_DTYPES = {"float32": "fp32", "float64": "fp64", "float16": "fp16", "bfloat16": "bf16"}
# Weights may fill this share of a GPU: the rest is left for activations and the KV cache of generation.
GPU_WEIGHT_SHARE = 0.85
# On the CPU (and MPS, whose memory is the system's) the pool keeps models up to this share of the RAM.
RAM_WEIGHT_SHARE = 0.5

_CUDA = re.compile(r"^cuda(:\d+)?$")


@dataclass(frozen=True)
class Placement:
    """A resolved placement: a concrete device, a dtype name (`auto`: the checkpoint's own) and a device map."""

    device: str
    dtype: str = "auto"
    device_map: str | None = None

    @property
    def accelerator(self) -> bool:
        return self.device != "cpu"


def check_device(value: str | None) -> str:
    """Normalise a device name without touching torch; UserInputError names the accepted forms."""
    device = "auto" if value in (None, "") else str(value).strip().lower()
    if device in ("auto", "cpu", "mps") or _CUDA.match(device):
        return device
    raise UserInputError(f"device must be one of {', '.join(DEVICES)}, got {value!r}")


def check_dtype(value) -> str:
    """Normalise a dtype name (`bf16` -> `bfloat16`); a torch dtype is accepted as its name."""
    if value is None or value == "":
        return "auto"
    name = str(value).removeprefix("torch.").strip().lower()
    name = DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise UserInputError(f"dtype must be one of {', '.join(DTYPES)} (or bf16, fp16, fp32), got {value!r}")
    return name


def check_device_map(value: str | None) -> str | None:
    if value in (None, "", "none"):
        return None
    if value not in DEVICE_MAPS:
        raise UserInputError(f"device map must be auto or none, got {value!r}")
    return value


def resolve_device(value: str | None = "auto") -> str:
    """`auto` -> the first of CUDA, MPS, CPU that is available; an explicit device must be available."""
    import torch

    device = check_device(value)
    if device == "auto":
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        if _mps_available(torch):
            return "mps"
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserInputError(
                f"device {device} asked for, but this machine has no usable CUDA GPU (use --device cpu)"
            )
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            raise UserInputError(f"device {device} asked for, but this machine has {count} CUDA GPU(s)")
        return f"cuda:{index}"
    if device == "mps" and not _mps_available(torch):
        raise UserInputError("device mps asked for, but MPS is not available here (use --device cpu)")
    return device


def available_devices() -> list[str]:
    """The devices a user can pick here: auto, cpu, each CUDA GPU (cuda:0, cuda:1, ...), and mps when present."""
    import torch

    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available(torch):
        found.append("mps")
    return found


def resolve_dtype(value, device: str) -> str:
    """`auto`: bf16 on a GPU that supports it, else fp16 on a GPU; the checkpoint's own dtype on the CPU."""
    dtype = check_dtype(value)
    if dtype != "auto" or device == "cpu":
        # On the CPU `auto` keeps what loading did before devices existed, so fingerprints (and with them
        # the users' reference log-prob caches) stay valid.
        return dtype
    import torch

    if device.startswith("cuda"):
        with torch.cuda.device(device):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        # MPS runs bfloat16 from macOS 14 on.
        try:
            return "bfloat16" if torch.backends.mps.is_macos_or_newer(14, 0) else "float16"
        except (AttributeError, RuntimeError):
            return "float16"
    return "auto"


def resolve(device: str | None = "auto", dtype=None, device_map: str | None = None) -> Placement:
    """The placement a model load uses: concrete device and dtype, and the device map when one is asked for."""
    where = resolve_device(device)
    mapping = check_device_map(device_map)
    if mapping and where == "cpu":
        mapping = None  # one device already holds everything
    return Placement(where, resolve_dtype(dtype, where), mapping)


def torch_dtype(name: str):
    """`auto` stays the string transformers understands; other names become torch dtypes."""
    name = check_dtype(name)
    if name == "auto":
        return "auto"
    import torch

    return getattr(torch, name)


def describe(local) -> str:
    """Where a loaded model runs, for people: 'sft on cuda:0, bf16' (a device map lists its devices)."""
    model = getattr(local, "model", local)
    name = getattr(local, "name", None) or "model"
    devices = _devices_of(model)
    where = "+".join(devices) if devices else "?"
    dtype = str(getattr(model, "dtype", "")).removeprefix("torch.")
    return f"{name} on {where}, {SHORT_DTYPES.get(dtype, dtype or '?')}"


def describe_plan(placement: Placement) -> str:
    """Where models will run before any is loaded: 'cuda:0, bf16' or 'cpu, checkpoint dtype'."""
    dtype = (
        "checkpoint dtype"
        if placement.dtype == "auto"
        else SHORT_DTYPES.get(placement.dtype, placement.dtype)
    )
    mapped = " (device map auto)" if placement.device_map else ""
    return f"{placement.device}{mapped}, {dtype}"


def _devices_of(model) -> list[str]:
    mapping = getattr(model, "hf_device_map", None)
    if isinstance(mapping, dict) and mapping:
        seen = []
        for value in mapping.values():
            name = f"cuda:{value}" if isinstance(value, int) else str(value)
            if name not in seen:
                seen.append(name)
        return seen
    device = getattr(model, "device", None)
    return [str(device)] if device is not None else []


def model_bytes(model) -> int:
    """Bytes held by a model's parameters and buffers (tied weights counted once)."""
    if model is None or not hasattr(model, "parameters"):
        return 0
    seen: dict[tuple[str, int], int] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.device.type == "meta":
            continue
        storage = tensor.untyped_storage()
        seen[(str(tensor.device), storage.data_ptr())] = storage.nbytes()
    return sum(seen.values())


def default_max_bytes(device: str) -> int:
    """The pool's byte budget on a device: most of a GPU's memory, half the RAM on the CPU and MPS."""
    if device.startswith("cuda"):
        import torch

        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        return int(total * GPU_WEIGHT_SHARE)
    return int(physical_ram() * RAM_WEIGHT_SHARE)


def physical_ram() -> int:
    """Total RAM in bytes (64 GiB when the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 64 << 30


def checkpoint_bytes(source: str | os.PathLike) -> int | None:
    """Size of a local checkpoint's weight files (an estimate of its size in memory); None when unknown."""
    path = Path(source)
    if not path.is_dir():
        return None
    total = sum(
        p.stat().st_size for p in path.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()
    )
    return total or None


def device_map_for(placement: Placement, source: str | os.PathLike) -> str | dict | None:
    """What `from_pretrained(device_map=...)` gets: `auto` when asked for, or when a CUDA device lacks room."""
    if placement.device_map:
        return placement.device_map
    if not placement.device.startswith("cuda"):
        return None
    need = checkpoint_bytes(source)
    if need is None:
        return None
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(placement.device))
    if need > free * GPU_WEIGHT_SHARE:
        log.info(
            "%s needs ~%.1f GB, %s has %.1f GB free: spreading it with device_map=auto",
            source,
            need / 1e9,
            placement.device,
            free / 1e9,
        )
        return "auto"
    return None


def release_memory(device: str | None) -> None:
    """Return freed blocks of a GPU to the driver, so another process (a training worker) can use them."""
    import gc

    gc.collect()
    if device is None or device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    elif device == "mps":
        import torch

        if _mps_available(torch):
            torch.mps.empty_cache()


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
