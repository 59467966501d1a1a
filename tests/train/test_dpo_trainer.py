"""CachedRefDPOTrainer: the TRL path it overrides, equivalence with TRL's own reference, no reference forwards."""

from __future__ import annotations

import copy
import warnings

import pytest

from common.errors import ModelError
from tests.train.dpo_fixtures import TinySFT, tiny_config, tiny_sft, triples  # noqa: F401
from train import kl as kl_module
from train.dpo_trainer import OVERRIDDEN, OVERRIDDEN_PARAMS, cached_ref_trainer_class, check_trl_path
from train.rundir import RunDir
from train.snapshot import canonical_messages
from train.worker import build_trainer, to_dataset

# Accuracies are left out: at step 1 policy == reference, and a tie broken by float32 rounding flips them.
COMPARED = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins")


class ForwardCounter:
    """Counts backbone forwards by kind, with a hook on the model itself (not on PrefLab's calls)."""

    def __init__(self):
        self.policy = 0
        self.reference = 0  # adapters disabled, outside a KL estimate: what DPO's reference costs
        self.kl_reference = 0  # adapters disabled inside a KL estimate: counted separately

    def attach(self, trainer) -> ForwardCounter:
        from peft.tuners.tuners_utils import BaseTunerLayer

        peft_model = trainer.model
        layers = [m for m in peft_model.modules() if isinstance(m, BaseTunerLayer)]
        assert layers, "the policy has no LoRA layers to tell the reference apart"

        def hook(module, args, kwargs, output):
            if any(layer.disable_adapters for layer in layers):
                if kl_module.probing():
                    self.kl_reference += 1
                else:
                    self.reference += 1
            else:
                self.policy += 1

        peft_model.get_base_model().model.register_forward_hook(hook, with_kwargs=True)
        return self


def load_sft(tiny: TinySFT, *, adapters: bool = True):
    from models.local import Variant, load_variant

    variant = Variant("sft", str(tiny.base), (str(tiny.adapter),) if adapters else ())
    return load_variant(variant, cache_dir=tiny.base.parent / "cache", dtype="float64")


def rows_with_refs(local, n: int, seed: int = 0) -> list[dict]:
    """Snapshot-style rows whose reference log-probs come from `local` (the SFT variant), scored as the worker
    scores them: each prompt's tokens run once for its chosen and rejected responses."""
    from train.refcache import score_responses

    data = triples(n, seed)
    prompts = [canonical_messages(p) for p, _, _ in data]
    chosen, rejected = [c for _, c, _ in data], [r for _, _, r in data]
    items = [(p, c) for p, c in zip(prompts, chosen, strict=True)]
    items += [(p, r) for p, r in zip(prompts, rejected, strict=True)]
    scored = score_responses(local, items, max_length=1024, truncation_mode="keep_start")
    ref_chosen, ref_rejected = scored[:n], scored[n:]
    columns = (prompts, chosen, rejected, ref_chosen, ref_rejected)
    names = ("prompt", "chosen", "rejected", "ref_chosen_logps", "ref_rejected_logps")
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def by_step(log_history, prefix: str = "") -> dict[int, dict[str, float]]:
    """{step: {metric: value}} for the compared metrics of train (prefix '') or eval (prefix 'eval_') rows."""
    out: dict[int, dict[str, float]] = {}
    for row in log_history:
        values = {name: row[prefix + name] for name in COMPARED if prefix + name in row}
        if values and (prefix or "eval_loss" not in row):
            out.setdefault(row["step"], {}).update(values)
    return out


def test_trl_still_routes_reference_logps_through_the_overridden_method():
    from trl import DPOTrainer

    check_trl_path()  # raises TrlPathChanged, naming what moved, after a TRL upgrade
    import inspect

    ours = cached_ref_trainer_class()
    assert OVERRIDDEN in ours.__dict__, "CachedRefDPOTrainer must override the method TRL calls"
    assert tuple(inspect.signature(getattr(DPOTrainer, OVERRIDDEN)).parameters) == OVERRIDDEN_PARAMS
    assert tuple(inspect.signature(ours.__dict__[OVERRIDDEN]).parameters) == OVERRIDDEN_PARAMS


def test_plain_trl_cannot_take_dataset_reference_logps_but_ours_keeps_them(tiny_sft, tmp_path):  # noqa: F811
    """The bug the override exists for: TRL recomputes and concatenates, so given columns collide."""
    from trl import DPOTrainer

    local = load_sft(tiny_sft)
    rows = rows_with_refs(local, 6)
    cfg = tiny_config(output_dir=str(tmp_path / "plain"), eval_strategy="no")
    plain = copy.deepcopy(cfg)
    with pytest.raises(ValueError, match="ref_chosen_logps"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DPOTrainer(
            model=copy.deepcopy(local.model),
            args=plain,
            train_dataset=to_dataset(rows),
            processing_class=local.tokenizer,
            peft_config=_lora(cfg),
        )
    trainer = cached_ref_trainer_class()(
        model=local.model,
        args=cfg,
        train_dataset=to_dataset(rows),
        processing_class=local.tokenizer,
        peft_config=_lora(cfg),
    )
    assert trainer.train_dataset["ref_chosen_logps"] == pytest.approx([r["ref_chosen_logps"] for r in rows])
    assert trainer.ref_model is None


def test_missing_cached_columns_are_refused_not_recomputed(tiny_sft, tmp_path):  # noqa: F811
    local = load_sft(tiny_sft)
    rows = rows_with_refs(local, 4)
    cfg = tiny_config(output_dir=str(tmp_path / "x"), eval_strategy="no")
    with pytest.raises(ModelError, match="lacks ref_chosen_logps, ref_rejected_logps"):
        cached_ref_trainer_class()(
            model=local.model,
            args=cfg,
            train_dataset=to_dataset(rows, with_ref=False),
            processing_class=local.tokenizer,
            peft_config=_lora(cfg),
        )


@pytest.mark.parametrize("trl_reference", ["adapter-disabled", "ref_model"])
def test_cached_reference_equals_trl_reference_model_at_every_step(tiny_sft, tmp_path, trl_reference):  # noqa: F811
    """Same seed, float64, no dropout: 3 steps with cached refs vs TRL's reference forward give the same numbers."""
    from trl import DPOTrainer

    sft = load_sft(tiny_sft)
    rows = rows_with_refs(sft, 10)
    train_rows, val_rows = rows[:6], rows[6:]
    # The reference really is the SFT variant: the base alone scores these responses differently.
    base_refs = rows_with_refs(load_sft(tiny_sft, adapters=False), 10)
    assert (
        max(abs(a["ref_chosen_logps"] - b["ref_chosen_logps"]) for a, b in zip(rows, base_refs, strict=True))
        > 0.5
    )

    cfg = tiny_config(
        output_dir=str(tmp_path / "cached"), max_steps=3, eval_steps=1, kl_every=0, learning_rate=2e-2
    )
    cached, _, _ = build_trainer(cfg, sft, train_rows, val_rows, RunDir(tmp_path), kl_prompts=[])
    cached_count = ForwardCounter().attach(cached)
    cached.train()

    trl_args = copy.deepcopy(cfg)
    trl_args.output_dir = str(tmp_path / "trl")
    trl_args.precompute_ref_log_probs = False  # TRL's default: a reference forward on every batch
    # With PEFT and no ref_model TRL disables the adapter (base + merged SFT); or it runs a separate SFT copy.
    ref_model = load_sft(tiny_sft).model if trl_reference == "ref_model" else None
    trl = DPOTrainer(
        model=load_sft(tiny_sft).model,
        ref_model=ref_model,
        args=trl_args,
        train_dataset=to_dataset(train_rows, with_ref=False),
        eval_dataset=to_dataset(val_rows, with_ref=False),
        processing_class=sft.tokenizer,
        peft_config=_lora(cfg),
    )
    trl_count = ForwardCounter().attach(trl)
    trl.train()

    for prefix in ("", "eval_"):
        ours, theirs = by_step(cached.state.log_history, prefix), by_step(trl.state.log_history, prefix)
        assert sorted(ours) == sorted(theirs) == [1, 2, 3]
        for step in ours:
            assert ours[step] == pytest.approx(theirs[step], abs=1e-4), (prefix, step)
    last = by_step(cached.state.log_history)[3]
    assert abs(last["rewards/margins"]) > 1e-2  # the policy moved: the comparison is not of zeros
    # Our path makes no reference forward at all; TRL's makes one per training and eval batch.
    assert cached_count.reference == 0 and cached_count.policy > 0
    if ref_model is None:
        assert trl_count.reference > 0  # the hook does see reference forwards when there are some


def test_kl_estimates_are_the_only_reference_forwards(tiny_sft, tmp_path):  # noqa: F811
    sft = load_sft(tiny_sft)
    rows = rows_with_refs(sft, 10)
    cfg = tiny_config(output_dir=str(tmp_path / "t"), max_steps=4, eval_steps=2, kl_every=2)
    prompts = [rows[8]["prompt"], rows[9]["prompt"]]
    trainer, files, kl = build_trainer(cfg, sft, rows[:8], rows[8:], RunDir(tmp_path), kl_prompts=prompts)
    counter = ForwardCounter().attach(trainer)
    trainer.train()
    files.writer.close()
    assert counter.reference == 0
    assert counter.kl_reference == kl.ref_forwards == 2  # steps 2 and 4, one batched forward each
    metrics = (tmp_path / "metrics.jsonl").read_text()
    assert '"name": "kl"' in metrics and '"split": "eval"' in metrics


def _lora(cfg):
    from train.worker import lora_config

    return lora_config(cfg)


def test_lora_layers_adapts_only_the_top_blocks_and_trains_them(tiny_sft, tmp_path):  # noqa: F811
    sft = load_sft(tiny_sft)
    n_layers = sft.model.config.num_hidden_layers
    assert n_layers >= 2, "the tiny model needs blocks below the adapted one"
    rows = rows_with_refs(sft, 6)
    cfg = tiny_config(
        output_dir=str(tmp_path / "t"), max_steps=2, kl_every=0, lora_layers=1, lora_targets="all-linear"
    )
    trainer, files, _ = build_trainer(cfg, sft, rows[:4], rows[4:], RunDir(tmp_path), kl_prompts=[])
    lora_b = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    blocks = {int(n.split(".layers.")[1].split(".")[0]) for n in lora_b}
    assert blocks == {n_layers - 1}, f"adapted blocks {sorted(blocks)}"
    # 'all-linear' (a string peft refuses beside a block subset) became every linear layer of the block.
    adapted = {n.split(".layers.")[1].split(".")[2] for n in lora_b}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    trainer.train()
    files.writer.close()
    after = dict(trainer.model.named_parameters())
    assert any(not after[n].detach().equal(before) for n, before in lora_b.items()), "the top block trained"
