"""A few DPO steps on the real default SmolLM2 with demo-like triples (slow: converts and trains the real model)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.train.dpo_fixtures import seed_triples

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)


def demo_triples(n: int) -> list[tuple[list[dict], str, str]]:
    """Incident prompts; chosen = the gold triage, rejected = a vague answer with the wrong severity."""
    rows = [json.loads(line) for line in (ROOT / "data" / "incidents.jsonl").read_text().splitlines()]
    out = []
    for row in [r for r in rows if r["split"] == "train"][:n]:
        wrong = {"SEV1": "SEV4", "SEV2": "SEV4", "SEV3": "SEV1", "SEV4": "SEV1"}[row["gold_severity"]]
        rejected = (
            f"Severity: {wrong}\nSummary: Something is wrong with a service.\nNext steps:\n- Look into it."
        )
        out.append(([{"role": "user", "content": row["prompt"]}], row["gold"], rejected))
    return out


@pytest.mark.slow
def test_a_few_dpo_steps_on_the_real_default_model(tmp_path, models_cache):
    from annotate.jobs import JobRunner
    from common.context import AppConfig, Context, variant_resolver
    from models.local import DEFAULT_BASE, Variant, load_variant
    from models.pool import ModelPool
    from store import Store
    from train.config import build_config
    from train.service import run_training

    load_variant(Variant("base", DEFAULT_BASE), cache_dir=models_cache)  # converts the GGUF once per session
    cfg = AppConfig(home=tmp_path / "home")
    cfg.home.mkdir()
    (cfg.home / "models").symlink_to(
        models_cache, target_is_directory=True
    )  # the worker finds the same cache
    cfg.paths.ensure()
    store = Store.open(cfg.paths.db)
    store.ensure_model("sft", DEFAULT_BASE, [], "sft")  # the base alone stands in for a merged SFT checkpoint
    seed_triples(store, demo_triples(12))  # 8 train + 4 validation: the minimums below
    ctx = Context(
        cfg=cfg,
        store=store,
        generator=ModelPool(variant_resolver(store), cfg.paths.models),
        jobs=JobRunner(store),
    )
    settings = build_config(
        {
            "max_steps": 3,
            "per_device_train_batch_size": 2,
            "per_device_eval_batch_size": 4,
            "gradient_accumulation_steps": 1,
            "learning_rate": 5e-5,
            "eval_steps": 3,
            "kl_every": 3,
            "kl_prompts": 2,
            "kl_max_new_tokens": 16,
            "min_train_pairs": 8,
            "min_val_pairs": 4,
            "val_fraction": 0.25,
            "max_length": 512,
        }
    )
    result = run_training(ctx, settings)
    assert result.status == "done", result.error
    rd = result.run_dir
    assert (rd / "adapter" / "adapter_model.safetensors").is_file()
    assert store.get_model(f"sft+dpo@{result.run_id}").adapters == [str(rd / "adapter")]
    final = result.summary["final"]
    assert {"loss", "val_margin", "val_accuracy", "kl"} <= final.keys()
    log.warning(
        "real-model DPO: %s s/step (train_runtime/steps incl. eval+KL), whole run %s s, ref scoring %s s",
        result.summary["seconds_per_step"],
        result.summary["seconds"],
        result.summary["ref_seconds"],
    )
    store.close()
