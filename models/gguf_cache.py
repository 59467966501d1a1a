"""Convert the shipped SmolLM2 GGUF once into a safetensors folder, so later loads are fast and trainable."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from common.errors import ModelError
from models.variants import DEFAULT_BASE, default_gguf_path

log = logging.getLogger(__name__)

# SmolLM2-Instruct's own template; used only if a GGUF arrives without `tokenizer.chat_template`.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SOURCE_FILE = "preflab_source.json"


def default_cache_path(cache_dir: str | os.PathLike) -> Path:
    """Where the converted default model lives under `cache_dir`."""
    return Path(cache_dir) / DEFAULT_BASE


def ensure_default_cache(cache_dir: str | os.PathLike) -> Path:
    """Return the safetensors folder of the default model, converting the GGUF first if it is not cached."""
    target = default_cache_path(cache_dir)
    # The folder only ever appears through an atomic rename of a finished conversion, so existing means complete.
    if (target / SOURCE_FILE).is_file():
        log.debug("default model cached at %s", target)
        return target
    gguf = default_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_BASE}.partial-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder once renamed
    try:
        convert_gguf(gguf, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first (rename onto a non-empty folder fails); its copy is as good as ours.
            if not (target / SOURCE_FILE).is_file():
                raise
            log.info("default model was cached concurrently at %s; discarding this conversion", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(gguf: Path, dest: Path) -> None:
    """Dequantize `gguf` with transformers and save model, tokenizer and generation config to `dest`."""
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    started = time.perf_counter()
    log.info("converting %s to safetensors in %s (one-off, about half a minute)", gguf.name, dest)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # dequantize=True unpacks every block into dense float32 weights: the result is a plain model that can be
        # saved, trained and scored, which a packed GGUF model cannot.
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
    except (
        Exception
    ) as exc:  # transformers raises many types here; the user only needs to know which file failed
        raise ModelError(f"could not convert {gguf}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if not tokenizer.chat_template or "<|im_start|>" not in tokenizer.chat_template:
        log.warning("%s has no ChatML chat template; using SmolLM2's", gguf.name)
        tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    # The GGUF loader may leave quantization state behind; the saved copy must read as an ordinary checkpoint.
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    (dest / SOURCE_FILE).write_text(
        json.dumps({"gguf": gguf.name, "bytes": gguf.stat().st_size, "converted_by": "preflab"}, indent=2)
    )
    log.info("converted %s in %.1f s", gguf.name, time.perf_counter() - started)
