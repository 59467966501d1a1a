"""Offline fixtures for the training tests: the tiny ChatML Llama saved as a float32 local checkpoint."""

from __future__ import annotations

import os

# No test may reach the Hub; set before transformers/huggingface_hub read it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest

from tests.models.tiny_models import build_tiny_model, build_tokenizer


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    """The tiny Llama (float32, the dtype training uses) and its tokenizer as an ordinary checkpoint folder."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer")))
    path = tmp_path_factory.mktemp("tiny-base")
    build_tiny_model(tokenizer, dtype=torch.float32).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def tiny_local(tiny_base_dir, tmp_path):
    """A fresh LocalModel of the tiny base, loaded the way every variant is."""
    from models.local import Variant, load_variant

    return load_variant(Variant("tiny", str(tiny_base_dir)), cache_dir=tmp_path / "models")


@pytest.fixture(scope="session")
def models_cache(tmp_path_factory):
    """One converted SmolLM2 cache per session for the slow tests."""
    return tmp_path_factory.mktemp("models")
