"""The arms of bench/dpo_throughput.py: one timed DPO training run each, TRL's trainer or PrefLab's cached reference.

bench/dpo_throughput.py says what each arm stands for and runs them; bench/report.py lays the figures out.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

ARMS = ("trl-default", "trl-precompute", "preflab-cold", "preflab-warm")
BASELINE = "trl-default"
# Every bench training run: one step per batch, nothing but the training itself (no eval, KL estimate, saving,
# reporting or progress bars), a loss logged every step.
QUIET_RUN = {
    "gradient_accumulation_steps": 1,
    "eval_strategy": "no",
    "kl_every": 0,
    "report_to": "none",
    "save_strategy": "no",
    "logging_steps": 1,
    "disable_tqdm": True,
    "dataloader_num_workers": 0,
}


@dataclass
class Timing:
    """One timed training run of an arm."""

    seconds: float
    setup: float  # reference fill or precompute, tokenization, LoRA wrapping: everything before train()
    ref_forwards: int
    cpu: float = 0.0  # process CPU seconds, all threads: less sensitive than wall time to other jobs' load
    losses: list[float] = field(default_factory=list)


def snapshot_rows(data) -> list[dict]:
    """Rows shaped like a run snapshot (prompt/response hashes are the cache keys)."""
    from train.snapshot import triple_columns

    return [triple_columns(prompt, chosen, rejected) for prompt, chosen, rejected in data]


def make_config(args, beta: float, output_dir: Path, steps: int | None = None, batch: int | None = None):
    """PrefLab's DPO config for every arm (the TRL arms set precompute_ref_log_probs on theirs)."""
    from train.config import build_config

    return build_config(
        {
            **QUIET_RUN,
            "beta": beta,
            "max_steps": steps or args.steps,
            "per_device_train_batch_size": batch or args.batch,
            "seed": args.seed,
            "output_dir": str(output_dir),
        }
    )


# -- one timed run -------------------------------------------------------------------------------------------


class RefForwardCounter:
    """Counts no-grad backbone forwards (reference forwards here: no eval, no KL) with a hook on the model."""

    def __init__(self, *causal_lms):
        import torch

        self.count = 0
        self._torch = torch
        self._handles = [m.model.register_forward_hook(self._hook) for m in causal_lms]

    def _hook(self, module, args, output):
        if not self._torch.is_grad_enabled():
            self.count += 1

    def close(self) -> int:
        for h in self._handles:
            h.remove()
        return self.count


class Bench:
    """The SFT variant, its triples, and a fresh policy copy per run."""

    def __init__(self, args, local, data, workdir: Path):
        from train.dpo_trainer import check_trl_path

        check_trl_path()
        self.args, self.local, self.workdir = args, local, workdir
        self.rows = snapshot_rows(data)
        self.trained_pairs = args.steps * args.batch
        self._runs = 0
        self.store = None
        self.small = False  # the untimed warm-up: one pair, one step

    def _fresh(self, beta: float):
        """(policy weights copy, config) for one run; outside the timed region."""
        import transformers

        self._runs += 1
        small = 1 if self.small else None
        cfg = make_config(self.args, beta, self.workdir / f"out{self._runs}", small, small)
        transformers.set_seed(self.args.seed)
        return copy.deepcopy(self.local.model), cfg, [dict(r) for r in self.rows[: small or len(self.rows)]]

    def new_store(self):
        """An empty DuckDB store: the next PrefLab run is cold."""
        from store import Store

        if self.store is not None:
            self.store.close()
        self._runs += 1
        self.store = Store.open(self.workdir / f"store{self._runs}.duckdb")

    def trl(self, beta: float, *, precompute: bool) -> Timing:
        from trl import DPOTrainer

        from train.worker import to_dataset

        policy, cfg, rows = self._fresh(beta)
        # Set after construction: PrefLab's config refuses False in __post_init__.
        cfg.precompute_ref_log_probs = precompute
        counter = RefForwardCounter(policy)
        started, cpu = time.perf_counter(), time.process_time()
        dataset = to_dataset(rows, with_ref=False)
        return self._train(DPOTrainer, policy, cfg, dataset, counter, started, cpu)

    def preflab(self, beta: float) -> Timing:
        """One PrefLab run: fill reference log-probs from the store (scoring misses), then train on them."""
        from train.dpo_trainer import cached_ref_trainer_class
        from train.refcache import fill_ref_logps
        from train.worker import to_dataset

        policy, cfg, rows = self._fresh(beta)
        # A new run re-hashes the weights (the worker does too): count that every time.
        self.local._fingerprint = None
        counter = RefForwardCounter(policy, self.local.model)
        started, cpu = time.perf_counter(), time.process_time()
        fill_ref_logps(
            self.store,
            self.local,
            rows,
            max_length=cfg.max_length,
            truncation_mode=cfg.truncation_mode,
            batch_size=cfg.precompute_ref_batch_size or 8,  # what train.service passes
        )
        dataset = to_dataset(rows)
        return self._train(cached_ref_trainer_class(), policy, cfg, dataset, counter, started, cpu)

    def _train(self, trainer_class, policy, cfg, dataset, counter, started: float, cpu: float) -> Timing:
        """Build the trainer (setup ends here), train, and time both from `started`."""
        from train.worker import lora_config

        trainer = trainer_class(
            model=policy,
            args=cfg,
            train_dataset=dataset,
            processing_class=self.local.tokenizer,
            peft_config=lora_config(cfg),
        )
        _quiet(trainer)
        setup = time.perf_counter() - started
        trainer.train()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        return Timing(seconds, setup, counter.close(), cpu, _losses(trainer))


def _quiet(trainer) -> None:
    """No per-step printing: it would interleave with the report."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _losses(trainer) -> list[float]:
    return [float(r["loss"]) for r in trainer.state.log_history if "loss" in r and "train_runtime" not in r]
