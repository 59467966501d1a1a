"""Make a variant's files local before a process that runs offline (the training worker) loads it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from common.errors import ModelError
from models.variants import DEFAULT_BASE, Variant, check_variant_paths, looks_local

log = logging.getLogger(__name__)

# What `from_pretrained` reads: config, tokenizer and weights; not the ONNX, GGUF or duplicate .bin copies.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja", "tokenizer*"]


def ensure_local(variant: Variant, *, cache_dir: str | os.PathLike) -> None:
    """Convert the default GGUF or download a Hub base into the Hugging Face cache; local folders need nothing.

    Runs in the parent, which holds the user's Hub token (huggingface_hub reads HF_TOKEN or the saved login); the
    worker then loads the same id with HF_HUB_OFFLINE=1 from the cache.
    """
    check_variant_paths(variant.base, variant.adapters)
    if variant.base == DEFAULT_BASE:
        from models import gguf_cache

        gguf_cache.ensure_default_cache(Path(cache_dir))
        return
    if looks_local(variant.base):
        return
    import huggingface_hub

    try:
        folder = huggingface_hub.snapshot_download(variant.base, allow_patterns=HUB_PATTERNS)
        if not any(Path(folder).glob("*.safetensors")):
            # Older checkpoints ship only PyTorch pickles.
            huggingface_hub.snapshot_download(variant.base, allow_patterns=[*HUB_PATTERNS, "*.bin"])
    except Exception as exc:  # network, auth, missing repo: one line naming the model, never the token
        reason = type(exc).__name__
        raise ModelError(
            f"cannot download base {variant.base!r} of {variant.name!r} from the Hugging Face Hub ({reason}); "
            "check the id, your network and `hf auth login` for gated models"
        ) from exc
    log.info("base %s of %s is in the local Hugging Face cache", variant.base, variant.name)
