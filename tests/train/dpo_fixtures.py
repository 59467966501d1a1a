"""Helpers and fixtures for the DPO tests: a float64 tiny SFT variant, a store with triples, an in-process worker."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from random import Random

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest

from tests.models.tiny_models import WORDS, build_tiny_model, build_tokenizer, save_lora

ANIMALS = "cat dog bird fish horse cow sheep mouse lion tiger".split()
COLORS = "red blue green yellow black white orange purple".split()


@dataclass(frozen=True)
class TinySFT:
    """A float64 tiny base checkpoint and a non-zero SFT LoRA adapter: base != SFT variant."""

    base: Path
    adapter: Path


@pytest.fixture(scope="session")
def tiny_sft(tmp_path_factory) -> TinySFT:
    """The tiny Llama in float64 plus an SFT adapter with random non-zero A and B."""
    import torch
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("dpo-tiny")
    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(root / "tokenizer"))
    base = root / "base"
    build_tiny_model(tokenizer, seed=0, dtype=torch.float64).save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapter = save_lora(base, root / "sft", seed=1, targets=["q_proj", "v_proj"])
    return TinySFT(base, Path(adapter))


def triples(n: int, seed: int = 0) -> list[tuple[list[dict], str, str]]:
    """(prompt, chosen, rejected): chosen answers the question in one pattern, rejected is word salad."""
    rng = Random(seed)
    rows = []
    for i in range(n):
        animal = ANIMALS[i % len(ANIMALS)]
        color = COLORS[(i * 3) % len(COLORS)]
        prompt = [{"role": "user", "content": f"what color is the {animal} number {i}?"}]
        chosen = f"the {animal} is {color}."
        rejected = " ".join(rng.sample(WORDS, 5))
        rows.append((prompt, chosen, rejected))
    return rows


def seed_triples(
    store, rows, *, source: str = "human", decisions: list[str] | None = None, split: str = "train"
) -> list[int]:
    """Store prompts, generations (gen_a = chosen), pairs and labels; returns the pair ids."""
    model = store.get_model("sft")
    pair_ids = []
    for i, (prompt, chosen, rejected) in enumerate(rows):
        prompt_id = store.add_prompt(prompt, "test", split)
        gen_a = store.add_generation(prompt_id, model.id, chosen)
        gen_b = store.add_generation(prompt_id, model.id, rejected)
        pair_id = store.add_pair(prompt_id, gen_a, gen_b)
        decision = decisions[i] if decisions else "a"
        store.add_label(pair_id, "ann", decision, source=source)
        pair_ids.append(pair_id)
    return pair_ids


def make_ctx(home: Path, tiny: TinySFT, *, n_triples: int = 0, heldout: int = 2):
    """A Context over a fresh store in `home`: `sft` = tiny base + SFT adapter, loaded in float64."""
    from annotate.jobs import JobRunner
    from common.context import AppConfig, Context, variant_resolver
    from models.pool import ModelPool
    from store import Store

    cfg = AppConfig(home=home)
    cfg.paths.ensure()
    store = Store.open(cfg.paths.db)
    store.ensure_model("base", str(tiny.base), [], "base")
    store.ensure_model("sft", str(tiny.base), [str(tiny.adapter)], "sft")
    if n_triples:
        seed_triples(store, triples(n_triples))
    for i in range(heldout):
        store.add_prompt(
            [{"role": "user", "content": f"name a {COLORS[i]} animal please"}], "test", "heldout"
        )
    pool = ModelPool(variant_resolver(store), cfg.paths.models, dtype="float64")
    return Context(cfg=cfg, store=store, generator=pool, jobs=JobRunner(store))


def tiny_config(**overrides):
    """Settings sized for the tiny model: a handful of fast steps, a visible learning signal, no dropout."""
    from train.config import build_config

    values = {
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": 5e-3,
        "max_steps": 6,
        "eval_steps": 2,
        "lora_r": 4,
        "lora_alpha": 8.0,
        "lora_dropout": 0.0,
        "lora_targets": ["q_proj", "v_proj", "up_proj"],
        "min_train_pairs": 8,
        "min_val_pairs": 4,
        "val_fraction": 0.2,
        "kl_every": 2,
        "kl_prompts": 2,
        "kl_max_new_tokens": 8,
        "seed": 0,
        "dataloader_num_workers": 0,
    }
    values.update(overrides)
    return build_config(values)


class InProcessWorker:
    """The worker in a thread of the test process (same interface as Popen), so tests can hook its model."""

    def __init__(self, run_dir: Path, on_trainer=None, on_reference=None):
        from train.worker import run_worker

        self.pid = os.getpid()
        self.returncode = None
        self.status = None

        def target():
            hooks = {"on_reference": on_reference} if on_reference is not None else {}
            self.status = run_worker(run_dir, on_trainer=on_trainer, **hooks)
            self.returncode = 0 if self.status.get("state") in ("done", "cancelled") else 1

        self._thread = threading.Thread(target=target, name="inprocess-worker", daemon=True)
        self._thread.start()

    def poll(self):
        return None if self._thread.is_alive() else self.returncode

    def wait(self, timeout=None):
        self._thread.join(timeout)
        return self.returncode

    def terminate(self):  # a thread cannot be killed; the cancel file stops it
        pass

    kill = terminate


def in_process(on_trainer=None, on_reference=None):
    """A service launcher that runs the worker in this process; the hooks see its trainer and its reference model."""
    return lambda run_dir: InProcessWorker(run_dir, on_trainer, on_reference)
