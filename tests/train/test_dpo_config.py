"""PrefLabDPOConfig (defaults, presets, YAML < flags, validation, JSON), the snapshot split, torch-free imports."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from common.errors import UserInputError
from train.config import PRESETS, build_config, load_config  # re-exported from train.presets
from train.presets import config_from_overrides, config_overrides, config_to_dict
from train.snapshot import build_snapshot, split_rows

ROOT = Path(__file__).resolve().parents[2]


def test_services_and_config_import_without_torch():
    code = (
        "import sys, train.service, train.config, train.presets, train.cli, common.flags, train.health, train.snapshot, train.refcache, "
        "train.rundir; bad = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_defaults_follow_common_dpo_practice_and_are_cpu_safe():
    from trl import DPOConfig

    cfg = build_config({})
    assert isinstance(cfg, DPOConfig)
    assert (cfg.beta, cfg.learning_rate, cfg.num_train_epochs) == (0.1, 5e-6, 1.0)
    assert (cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps) == (2, 8)
    assert cfg.bf16 is False and cfg.gradient_checkpointing is False and cfg.activation_checkpointing is False
    assert cfg.precompute_ref_log_probs is True and cfg.loss_type == ["sigmoid"]
    assert cfg.sources == ("human", "import") and cfg.tie_policy == cfg.both_bad_policy == "drop"
    assert cfg.variant == "sft" and cfg.val_fraction == 0.1
    import torch

    assert cfg.use_cpu is (not torch.cuda.is_available())
    assert cfg.report_to in ([], "none", ["none"])


def test_flags_override_yaml_override_preset(tmp_path):
    path = tmp_path / "dpo.yaml"
    path.write_text("beta: 0.3\nlr: 1.0e-4\nlora_r: 8\nsources: [human, judge]\n")
    cfg = load_config(path, "demo", {"beta": 0.5, "num_train_epochs": None, "loss_type": "ipo"})
    assert cfg.beta == 0.5  # flag
    assert cfg.learning_rate == 1e-4 and cfg.lora_r == 8 and cfg.sources == ("human", "judge")  # YAML
    assert cfg.num_train_epochs == PRESETS["demo"]["num_train_epochs"]  # preset: the flag was not given
    assert cfg.loss_type == ["ipo"]
    demo = load_config(None, "demo")
    assert demo.learning_rate > build_config({}).learning_rate
    assert demo.gradient_accumulation_steps < build_config({}).gradient_accumulation_steps


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"beta": -1}, "beta must be a positive number, got -1"),
        ({"lora_r": 0}, "lora_r must be an integer >= 1, got 0"),
        ({"lora_layers": 0}, "lora_layers must be an integer >= 1, got 0"),
        ({"sources": ["human", "robot"]}, "got 'robot'"),
        ({"tie_policy": "keep"}, "tie_policy must be one of drop, both_orders, got 'keep'"),
        ({"lora_targets": ["q_proj", "lm_head"]}, "cannot include 'lm_head'"),
        ({"loss_type": "sigmod"}, "did you mean 'sigmoid'"),
        ({"val_fraction": 0.9}, "val_fraction must be in (0, 0.5], got 0.9"),
        ({"precompute_ref_log_probs": False}, "must stay true"),
        ({"ld_alpha": 0.5}, "ld_alpha is not supported"),
        ({"betta": 0.2}, "unknown setting 'betta'; did you mean 'beta'?"),
        ({"warmup_steps": -1}, "warmup_steps"),
    ],
)
def test_bad_values_are_refused_in_one_line_naming_them(values, message):
    with pytest.raises(UserInputError) as info:
        build_config(values)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_yaml_problems_are_one_line(tmp_path):
    with pytest.raises(UserInputError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(UserInputError, match="must hold a mapping"):
        load_config(bad)
    with pytest.raises(UserInputError, match="preset must be one of"):
        load_config(None, "fast")


def test_json_round_trip_rebuilds_the_same_run():
    cfg = load_config(
        None, "demo", {"beta": 0.25, "loss_type": "sigmoid,sft", "lora_targets": "q_proj,v_proj"}
    )
    full = config_to_dict(cfg)
    json.dumps(full)  # the runs table stores it as JSON
    assert full["beta"] == 0.25 and full["lora_targets"] == ["q_proj", "v_proj"]
    compact = config_overrides(cfg)
    assert json.loads(json.dumps(compact)) == compact
    rebuilt = config_from_overrides(compact, output_dir="/tmp/run")
    assert config_overrides(rebuilt) == compact
    assert rebuilt.loss_type == ["sigmoid", "sft"] and rebuilt.lora_targets == ("q_proj", "v_proj")


@dataclass
class Triple:
    label_id: int
    pair_id: int
    decision: str = "a"
    source: str = "human"
    chosen: str = "good"
    rejected: str = "bad"
    prompt_id: int = 1
    split: str = "train"
    prompt: list = None
    chosen_gen: int = 1
    rejected_gen: int = 2
    edited: bool = False
    annotator: str = "ann"
    created_at: datetime = datetime(2026, 1, 1)

    def __post_init__(self):
        self.prompt = self.prompt or [{"role": "user", "content": f"q{self.pair_id}", "name": "x"}]


def small(**values):
    return build_config({"min_train_pairs": 4, "min_val_pairs": 2, "val_fraction": 0.2, **values})


def test_snapshot_drops_ties_both_bad_and_judge_labels_by_default():
    rows = [Triple(i, i) for i in range(1, 9)]
    rows += [Triple(9, 9, "tie"), Triple(10, 10, "both_bad"), Triple(11, 11, source="judge")]
    rows += [Triple(12, 12, chosen="same", rejected="same")]
    snap = build_snapshot(rows, small())
    assert snap.size == 8
    assert snap.dropped == {"tie": 1, "both_bad": 1, "source judge": 1, "empty or identical responses": 1}
    assert snap.sources == {"human": 8}
    assert snap.train[0]["prompt"] == [{"role": "user", "content": snap.train[0]["prompt"][0]["content"]}]
    wider = build_snapshot(rows, small(sources=["human", "judge"], tie_policy="both_orders"))
    assert wider.size == 11  # + the judge label + the tie in both orders
    mirrored = [r for r in wider.train + wider.val if r["pair_id"] == 9]
    assert {(r["chosen"], r["rejected"]) for r in mirrored} == {("good", "bad"), ("bad", "good")}


def test_split_is_seeded_by_pair_and_keeps_pairs_together():
    rows = [{"pair_id": i // 2, "label_id": i} for i in range(200)]
    train, val = split_rows(rows, 0.1, 4, seed=0)
    assert split_rows(list(reversed(rows)), 0.1, 4, seed=0)[1] == [r for r in reversed(rows) if r in val]
    assert {r["pair_id"] for r in train}.isdisjoint({r["pair_id"] for r in val})
    assert 10 <= len(val) <= 30
    assert split_rows(rows, 0.1, 4, seed=1)[1] != val
    tiny_train, tiny_val = split_rows(rows[:10], 0.1, 4, seed=0)
    assert len(tiny_val) >= 4 and len(tiny_train) + len(tiny_val) == 10


def test_snapshot_hash_changes_with_the_data_only():
    rows = [Triple(i, i) for i in range(1, 11)]
    first = build_snapshot(rows, small())
    assert build_snapshot(list(reversed(rows)), small()).dataset_hash == first.dataset_hash
    rows[0].chosen = "better"
    assert build_snapshot(rows, small()).dataset_hash != first.dataset_hash


def test_too_small_or_empty_datasets_are_refused_in_one_line():
    with pytest.raises(UserInputError) as info:
        build_snapshot([], small())
    assert (
        str(info.value)
        == "need at least 6 confirmed preference triples, have 0; label more pairs in Annotate"
    )
    judged = [Triple(i, i, source="judge") for i in range(1, 4)] + [Triple(4, 4)]
    with pytest.raises(UserInputError) as info:
        build_snapshot(judged, small())
    assert str(info.value).startswith(
        "need at least 6 confirmed preference triples, have 1 (of 4; left out: 3 "
    )
    assert "--include-judge" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"num_train_epochs": 10**6}, "num_train_epochs"),
        ({"limit": 10**12}, "limit"),
        ({"kl_max_new_tokens": 10**6}, "kl_max_new_tokens"),
    ],
)
def test_epochs_limits_and_sampled_tokens_have_upper_bounds(overrides, named):
    with pytest.raises(UserInputError) as exc:
        load_config(None, "default", overrides)
    assert named in str(exc.value) and "\n" not in str(exc.value)
