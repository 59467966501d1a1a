"""Fixtures for the annotation services: a fresh store with prompts, and a pool serving a tiny model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from common.seams import LoadedModel, ModelLoader
from models.pool import ModelPool
from models.variants import Variant

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def annotate_tokenizer_dir(tmp_path_factory):
    from tests.models.tiny_models import build_tokenizer

    return build_tokenizer(tmp_path_factory.mktemp("annotate-tokenizer"))


@pytest.fixture
def tiny_local_model(annotate_tokenizer_dir):
    """A float64 tiny Llama as a LocalModel; fresh per test."""
    from transformers import AutoTokenizer

    from models.local import LocalModel
    from tests.models.tiny_models import build_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(annotate_tokenizer_dir)
    return LocalModel.from_pretrained_objects(build_tiny_model(tokenizer), tokenizer, name="tiny")


class CountingLoader(ModelLoader):
    """Stands in for load_variant: hands out the tiny model and counts loads per variant."""

    def __init__(self, model: LoadedModel):
        self.model = model
        self.calls: list[str] = []

    def __call__(self, variant: Variant, *, cache_dir: Path, dtype: Any = None) -> LoadedModel:
        self.calls.append(variant.name)
        return self.model


class CountingPool(ModelPool):
    """A ModelPool loading through a CountingLoader, kept at hand: tests read its loads."""

    def __init__(self, store, cache_dir: Path, loader: CountingLoader):
        from common.context import variant_resolver

        super().__init__(variant_resolver(store), cache_dir, loader=loader)
        self.loader = loader


@pytest.fixture
def store(tmp_path):
    from store import Store

    s = Store.open(tmp_path / "db.duckdb")
    yield s
    s.close()


@pytest.fixture
def sft_store(store):
    """A store with 6 train + 2 held-out prompts and an `sft` variant registered."""
    for i in range(8):
        store.add_prompt(
            [{"role": "user", "content": f"Triage incident {i}: the api is slow"}],
            "test",
            "heldout" if i >= 6 else "train",
            gold={"answer": f"Severity: SEV{i % 4 + 1}", "severity": f"SEV{i % 4 + 1}"},
        )
    store.add_model("sft", "tiny-base", [], "sft")
    return store


@pytest.fixture
def tiny_pool(tmp_path, store, tiny_local_model):
    return CountingPool(store, tmp_path / "models", CountingLoader(tiny_local_model))
