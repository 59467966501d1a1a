"""Fixtures for the eval tests: a store with demo-like prompts and three variants served by tiny models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from common.seams import LoadedModel, ModelLoader
from models.variants import Variant

os.environ["HF_HUB_OFFLINE"] = "1"

GOLD = (
    "Severity: SEV{n}\nSummary: ShipRoute fails for EU customers since 17:00 AEST.\nNext steps:\n"
    "- Route traffic to the backup carrier API.\n- Add retries with backoff."
)
SEEDS = {"base": 0, "sft": 1, "sft+dpo@1": 2, "sft+dpo@2": 3}


class GoldModel(LoadedModel):
    """A stub model that answers every incident with its gold answer: the variant a perfect DPO would give."""

    fingerprint = "gold-stub"

    def generate(self, prompts, params, *, seeds, batch_size=8, progress=None):
        from models.sampling import Generation

        out = []
        for messages, seed in zip(prompts, seeds, strict=True):
            i = int(messages[0]["content"].split("Incident ")[1].split(":")[0])
            out.append(
                Generation(
                    GOLD.format(n=i % 4 + 1), n_tokens=30, seconds=0.0, seed=seed, finish_reason="stop"
                )
            )
        return out


class VariantLoader(ModelLoader):
    """Stands in for load_variant: a different tiny model per variant, so the columns really differ."""

    def __init__(self, tokenizer_dir: str | Path):
        self.tokenizer_dir = tokenizer_dir
        self.calls: list[str] = []

    def __call__(self, variant: Variant, *, cache_dir: Path, dtype: Any = None) -> LoadedModel:
        from transformers import AutoTokenizer

        from models.local import LocalModel
        from tests.models.tiny_models import build_tiny_model

        self.calls.append(variant.name)
        if variant.name.endswith("@gold"):
            return GoldModel()
        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_dir)
        model = build_tiny_model(tokenizer, seed=SEEDS[variant.name])
        return LocalModel.from_pretrained_objects(model, tokenizer, name=variant.name)


@pytest.fixture(scope="session")
def eval_tokenizer_dir(tmp_path_factory):
    from tests.models.tiny_models import build_tokenizer

    return build_tokenizer(tmp_path_factory.mktemp("eval-tokenizer"))


def add_prompts(store, n_heldout: int = 6, n_train: int = 2) -> None:
    """Incident-like prompts with gold answers, held-out first."""
    for i in range(n_heldout + n_train):
        sev = i % 4 + 1
        store.add_prompt(
            [
                {
                    "role": "user",
                    "content": f"Triage this incident report.\n\nIncident {i}: calls from inventory-sync to "
                    f"ShipRoute fail for EU customers from 17:00 AEST; about {10 + i}% end in an error.",
                }
            ],
            "test",
            "heldout" if i < n_heldout else "train",
            gold={"answer": GOLD.format(n=sev), "severity": f"SEV{sev}"},
        )


@pytest.fixture
def eval_store(tmp_path):
    from store import Store

    s = Store.open(tmp_path / "db.duckdb")
    add_prompts(s)
    s.add_model("base", "tiny-base", [], "base")
    s.add_model("sft", "tiny-base", ["sft-adapter"], "sft")
    s.add_model("sft+dpo@1", "tiny-base", ["sft-adapter", "dpo-1"], "dpo")
    yield s
    s.close()


@pytest.fixture
def eval_ctx(tmp_path, eval_store, eval_tokenizer_dir):
    from annotate.jobs import JobRunner
    from common.context import AppConfig, Context, variant_resolver
    from models.judge import RuleJudge
    from models.pool import ModelPool

    loader = VariantLoader(eval_tokenizer_dir)
    pool = ModelPool(variant_resolver(eval_store), tmp_path / "models", loader=loader)
    return Context(
        cfg=AppConfig(home=tmp_path / "home"),
        store=eval_store,
        judge=RuleJudge(),
        generator=pool,
        jobs=JobRunner(eval_store),
    )


def small_params():
    """Short responses keep the tiny-model tests fast."""
    from evaluate.responses import ResponseParams

    return ResponseParams(temperature=0.7, max_new_tokens=8, batch_size=8)


def add_judge_labels(store, annotator: str, n: int = 2) -> None:
    """Judge-sourced labels on train-prompt pairs, as `launch.py judge --accept` stores them."""
    sft = store.get_model("sft")
    train = store.list_prompts(split="train")
    for i in range(n):
        p = train[i % len(train)]
        a = store.add_generation(p.id, sft.id, f"answer a {i}")
        b = store.add_generation(p.id, sft.id, f"answer b {i}")
        pair = store.add_pair(p.id, a, b)
        store.add_label(pair, annotator, "a", source="judge", suggestion="a")
