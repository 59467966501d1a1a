"""Export a variant for an inference server: its merged checkpoint, or one combined LoRA adapter on its base.

A DPO adapter (`sft+dpo@N`) is trained on the *merged* base+SFT model, while vLLM applies one LoRA per request on
its base. Two ways to serve it: the merged `sft` checkpoint as the server's base with the DPO adapter as a LoRA
module on it (`export_merged`), or one adapter on the original base that sums every adapter's delta
(`export_combined`, PEFT's `cat` combination, checked module by module before it is written).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ModelError, UserInputError
from common.text import one_line
from models.local import base_source
from models.variants import Variant, check_variant_paths

log = logging.getLogger(__name__)

EXPORT_FILE = "preflab_export.json"
# vLLM accepts only these --max-lora-rank values (vllm/config/lora.py); its default is 16.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Relative difference allowed between the combined adapter's delta and the sum of the adapters' deltas.
COMBINE_RTOL = 1e-5
# Free space kept on top of the export's size, so an export never fills the disk to the last byte.
DISK_MARGIN = 64 * 2**20
_DTYPES = ("auto", "float32", "float64", "float16", "bfloat16")


@dataclass
class Exported:
    """What an export wrote and how a server uses it."""

    variant: str
    kind: str  # merged, adapter
    path: Path
    dtype: str
    bytes: int
    base: str | None = None  # adapter exports: the checkpoint the adapter applies on
    rank: int | None = None  # adapter exports: the combined LoRA rank
    info: dict[str, Any] = field(default_factory=dict)


def lora_module_name(variant_name: str) -> str:
    """A LoRA module name for a server: `sft+dpo@3` -> `sft+dpo-3` (no `@`, `=`, spaces or slashes)."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", variant_name).strip("-")
    return name or "adapter"


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest `--max-lora-rank` vLLM accepts that holds an adapter of `rank`."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ModelError(f"LoRA rank {rank} exceeds vLLM's largest --max-lora-rank {VLLM_LORA_RANKS[-1]}")


def adapter_rank(adapter: str | os.PathLike) -> int:
    """The largest rank in an adapter folder's adapter_config.json (r, or its rank_pattern)."""
    config = _adapter_config(Path(adapter))
    ranks = [int(config.get("r") or 8), *(int(v) for v in (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_commands(
    served_base: str | os.PathLike, modules: dict[str, str | os.PathLike], *, max_rank: int
) -> list[str]:
    """`vllm serve BASE --enable-lora ... --lora-modules NAME=PATH` and one runtime `load_lora_adapter` per module."""
    q = shlex.quote
    lines = [
        f"vllm serve {q(str(served_base))} --enable-lora --max-lora-rank {vllm_max_lora_rank(max_rank)} "
        + " ".join(f"--lora-modules {q(f'{name}={path}')}" for name, path in modules.items())
    ]
    for name, path in modules.items():
        body = json.dumps({"lora_name": name, "lora_path": str(path)})
        lines.append(
            f"curl -X POST $URL/v1/load_lora_adapter -H 'Content-Type: application/json' -d {q(body)}"
        )
    return lines


def check_output_dir(out: str | os.PathLike) -> Path:
    """An absent or empty folder whose parent exists: refuse anything else in one line."""
    path = Path(out).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise UserInputError(f"output {path} is a file; give a new or empty folder")
    if path.is_dir() and any(path.iterdir()):
        raise UserInputError(f"output folder {path} already holds files; give a new or empty folder")
    if not path.parent.is_dir():
        raise UserInputError(f"the folder above {path} does not exist")
    return path


def export_merged(
    variant: Variant, out: str | os.PathLike, *, cache_dir: str | os.PathLike, dtype=None
) -> Exported:
    """Write base + all adapters merged (safetensors, config, generation config, tokenizer) in the base's dtype."""
    out = check_output_dir(out)
    check_variant_paths(variant.base, variant.adapters)
    from models.local import merge_adapters

    source = base_source(variant, cache_dir)
    tokenizer, model = _load_base(variant, source, dtype)
    model = merge_adapters(model, variant.adapters)
    size = _model_bytes(model)
    _check_space(out, size)
    dtype_name = str(model.dtype).removeprefix("torch.")
    info = _provenance(variant, "merged", source, dtype_name)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        # The tokenizer as the base ships it (LocalModel changes padding on its own copy, not for servers).
        tokenizer.save_pretrained(tmp)
        (tmp / EXPORT_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    _write_atomically(out, write)
    log.info("exported merged %s (%s, %d bytes) to %s", variant.name, dtype_name, size, out)
    return Exported(variant.name, "merged", out, dtype_name, size, info=info)


def export_combined(
    variant: Variant, out: str | os.PathLike, *, cache_dir: str | os.PathLike, dtype=None
) -> Exported:
    """Write one LoRA adapter on the variant's base equal to all its adapters merged (PEFT `cat` combination)."""
    out = check_output_dir(out)
    if not variant.adapters:
        raise UserInputError(
            f"variant {variant.name!r} has no adapters: serve its base {variant.base} as it is"
        )
    check_variant_paths(variant.base, variant.adapters)
    for adapter in variant.adapters:
        _check_combinable(Path(adapter).expanduser())
    from peft import PeftModel

    source = base_source(variant, cache_dir)
    _tokenizer, model = _load_base(variant, source, dtype)
    names = [f"a{i}" for i in range(len(variant.adapters))]
    try:
        peft_model = PeftModel.from_pretrained(
            model, str(Path(variant.adapters[0]).expanduser()), adapter_name=names[0], is_trainable=False
        )
        for name, adapter in zip(names[1:], variant.adapters[1:], strict=True):
            peft_model.load_adapter(str(Path(adapter).expanduser()), adapter_name=name, is_trainable=False)
        # "default": PEFT saves a non-default adapter into a subfolder named after it.
        peft_model.add_weighted_adapter(names, [1.0] * len(names), "default", combination_type="cat")
    except Exception as exc:  # shape or target mismatches surface as assorted errors
        raise ModelError(one_line(f"cannot combine the adapters of {variant.name!r}: {exc}")) from exc
    config = peft_model.peft_config["default"]
    if config.use_rslora:
        _unit_scaling(peft_model, config)
    _check_exact(peft_model, names, "default", variant.name)
    config.base_model_name_or_path = source
    rank = int(config.r)
    peft_model.set_adapter("default")
    for name in names:
        peft_model.delete_adapter(name)
    size = sum(p.numel() * p.element_size() for n, p in peft_model.named_parameters() if "lora_" in n)
    _check_space(out, size)
    dtype_name = str(model.dtype).removeprefix("torch.")
    info = {**_provenance(variant, "adapter", source, dtype_name), "rank": rank}

    def write(tmp: Path) -> None:
        peft_model.save_pretrained(tmp, selected_adapters=["default"])
        (tmp / EXPORT_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    _write_atomically(out, write)
    log.info("exported combined adapter of %s (rank %d) to %s", variant.name, rank, out)
    return Exported(variant.name, "adapter", out, dtype_name, size, base=source, rank=rank, info=info)


def _load_base(variant: Variant, source: str, dtype):
    """(tokenizer, model) of the base, in the checkpoint's dtype unless `dtype` names one, on the CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=_torch_dtype(dtype))
    except Exception as exc:  # OSError, ValueError, Hub errors: the source and the reason in one line
        raise ModelError(one_line(f"cannot load base {variant.base!r} of {variant.name!r}: {exc}")) from exc
    return tokenizer, model.eval()


def _torch_dtype(dtype):
    """None/"auto": the checkpoint's own dtype (what the variant runs in on the CPU); else a torch dtype name."""
    if dtype is None or dtype == "auto":
        return "auto"
    if not isinstance(dtype, str):
        return dtype
    if dtype not in _DTYPES:
        raise UserInputError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    import torch

    return getattr(torch, dtype)


def _adapter_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(one_line(f"cannot read {path / 'adapter_config.json'}: {exc}")) from exc


def _check_combinable(path: Path) -> None:
    """Refuse, in one line, adapters whose effect is not a sum of B @ A deltas (cat would drop the rest)."""
    config = _adapter_config(path)
    kind = config.get("peft_type", "LORA")
    why = None
    if kind != "LORA":
        why = f"it is a {kind} adapter, not LoRA"
    elif config.get("use_dora"):
        why = "it uses DoRA (a magnitude vector, not a sum of deltas)"
    elif config.get("modules_to_save"):
        why = f"it trains whole modules too ({', '.join(config['modules_to_save'])})"
    elif config.get("bias", "none") != "none":
        why = f"it trains biases (bias={config['bias']!r})"
    elif config.get("target_parameters"):
        why = "it targets parameters, not modules"
    if why:
        raise UserInputError(
            f"cannot combine adapter {path} exactly: {why}; export the merged model instead (models export-merged)"
        )


def _unit_scaling(peft_model, config) -> None:
    """`cat` puts each adapter's own scaling into its A rows, so the combined adapter must scale by exactly 1."""
    from peft.tuners.lora import LoraLayer

    # The combined config copies the first adapter's; with rsLoRA it would scale by alpha/sqrt(r) instead of
    # alpha/r = 1. Plain LoRA with alpha = r is what a server applies as 1.
    config.use_rslora = False
    for module in peft_model.modules():
        if isinstance(module, LoraLayer) and "default" in module.scaling:
            module.scaling["default"] = 1.0


def _check_exact(peft_model, names: list[str], combined: str, variant_name: str) -> None:
    """Every adapted module's combined delta must equal the sum of the adapters' deltas; refuse otherwise."""
    import torch
    from peft.tuners.lora import LoraLayer

    checked = 0
    for module_name, module in peft_model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        present = [n for n in names if n in module.lora_A or n in module.lora_embedding_A]
        if not present:
            continue
        has_combined = combined in module.lora_A or combined in module.lora_embedding_A
        with torch.no_grad():
            expected = sum(module.get_delta_weight(n).double() for n in present)
            got = module.get_delta_weight(combined).double() if has_combined else torch.zeros_like(expected)
        scale = float(expected.abs().max()) or 1.0
        error = float((got - expected).abs().max()) / scale
        if error > COMBINE_RTOL:
            raise UserInputError(
                f"the adapters of {variant_name!r} do not combine exactly at {module_name} (relative error "
                f"{error:.1e}); export the merged model instead (models export-merged)"
            )
        checked += 1
    if not checked:
        raise ModelError(f"the adapters of {variant_name!r} adapt no module of the base")


def _model_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _check_space(out: Path, size: int) -> None:
    """Refuse before writing when the disk holding `out` has less room than the export needs."""
    free = shutil.disk_usage(out.parent).free
    if free < size + DISK_MARGIN:
        raise UserInputError(
            f"not enough disk space for the export in {out.parent}: needs about {_gib(size + DISK_MARGIN)}, "
            f"{_gib(free)} free"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _write_atomically(out: Path, write) -> None:
    """Write into a hidden folder beside `out`, then rename it into place: `out` is complete or absent."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        write(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the export is an ordinary folder once renamed
        if out.is_dir():
            out.rmdir()  # empty (checked before): rename cannot replace a folder on every platform
        os.rename(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ModelError(one_line(f"cannot write the export to {out}: {exc}")) from exc
        raise


def _provenance(variant: Variant, kind: str, source: str, dtype: str) -> dict[str, Any]:
    return {
        "exported_by": "preflab",
        "kind": kind,
        "variant": variant.name,
        "base": variant.base,
        "base_source": source,
        "adapters": list(variant.adapters),
        "dtype": dtype,
    }
