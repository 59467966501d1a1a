"""Tiny, offline model fixtures: a locally trained ChatML tokenizer and a float64 Llama built from a config."""

from __future__ import annotations

import os

# No test may reach the Hub; set before transformers/huggingface_hub read it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest

from tests.models.tiny_models import build_tiny_model, build_tokenizer, save_lora


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A byte-level BPE tokenizer trained in memory, saved with ChatML special tokens and template."""
    return build_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture
def tokenizer(tokenizer_dir):
    """A fresh copy per test, since LocalModel sets padding and pad token on it."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture
def tiny_model(tokenizer):
    """The tiny Llama in float64, so batching and padding cannot flip an equality."""
    return build_tiny_model(tokenizer)


@pytest.fixture
def local_model(tiny_model, tokenizer):
    """The tiny Llama wrapped as a LocalModel."""
    from models.local import LocalModel

    return LocalModel.from_pretrained_objects(tiny_model, tokenizer, name="tiny")


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory, tokenizer_dir):
    """The tiny model and tokenizer saved as an ordinary local checkpoint folder."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    path = tmp_path_factory.mktemp("tiny-base")
    build_tiny_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def adapter_dirs(tmp_path_factory, base_dir):
    """Two different non-zero LoRA adapters for the tiny base (attention, then MLP projections)."""
    root = tmp_path_factory.mktemp("adapters")
    first = save_lora(base_dir, root / "sft", seed=1, targets=["q_proj", "v_proj"])
    second = save_lora(base_dir, root / "dpo", seed=2, targets=["up_proj", "down_proj"])
    return first, second
