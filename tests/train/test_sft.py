"""Demo LoRA SFT: it learns the gold answers, saves only an adapter atomically, and leaves the caller's model alone."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from random import Random

import pytest

from common.errors import UserInputError
from models.local import DEFAULT_BASE, Variant, load_variant
from train.sft import ADAPTER_FILES, SFTRunConfig, run_sft, sft_examples_from_prompts

WORDS = "cat dog bird fish horse cow sheep mouse lion tiger tree flower".split()
COLORS = "red blue green yellow black white orange purple".split()
# A fixed question -> answer mapping the tiny model can memorise in a few dozen steps.
EXAMPLES = [
    ([{"role": "user", "content": f"what color is the {word}?"}], f"the {word} is {COLORS[i % len(COLORS)]}.")
    for i, word in enumerate(WORDS)
]
# Small and hot so the tiny model moves clearly within ~15 steps.
FAST = {
    "epochs": 5,
    "learning_rate": 1e-2,
    "batch_size": 4,
    "grad_accum": 1,
    "lora_r": 8,
    "lora_dropout": 0.0,
}


def demo_examples(n: int, seed: int = 0) -> list[tuple[list[dict], str]]:
    """Incident-triage prompts and strict-format gold answers shaped like the demo data set."""
    rng = Random(seed)
    services = ["checkout-api", "inventory-sync", "auth-gateway", "search-indexer", "billing-worker"]
    symptoms = ["time out after 30 s", "return HTTP 502", "fail TLS handshakes", "lag by 20 minutes"]
    rows = []
    for i in range(n):
        service, symptom = rng.choice(services), rng.choice(symptoms)
        share, level, hour = rng.randint(2, 60), rng.randint(1, 4), rng.randint(0, 23)
        report = (
            f"Hi team, since {hour:02d}:00 UTC about {share}% of requests to {service} {symptom}. "
            f"Customers in the EU region report errors at checkout and some retries succeed. We restarted two pods "
            f"and rolled back the config change from this morning, but the error rate is unchanged. The on-call "
            f"engineer suspects the upstream database failover that ran at {hour:02d}:05. Ticket {1000 + i}."
        )
        prompt = (
            "Triage this incident report. Answer with the severity (SEV1–SEV4), a one-sentence summary and next "
            f"steps.\n\n{report}"
        )
        answer = (
            f"Severity: SEV{level}\nSummary: {share}% of {service} requests {symptom} since {hour:02d}:00 UTC.\n"
            f"Next steps:\n- Check the database failover logs for {service}.\n- Page the owning team if errors grow."
        )
        rows.append(([{"role": "user", "content": prompt}], answer))
    return rows


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_sft_learns_the_answers_and_the_adapter_loads(tiny_local, tiny_base_dir, tmp_path):
    prompts, answers = [m for m, _ in EXAMPLES], [a for _, a in EXAMPLES]
    before = tiny_local.score(prompts, answers)
    calls = []

    result = run_sft(
        tiny_local, EXAMPLES, tmp_path / "run", SFTRunConfig(**FAST), progress=lambda *a: calls.append(a)
    )

    assert (result.steps, result.max_steps, result.n_examples, result.stopped) == (15, 15, 12, False)
    assert len(result.losses) == 15
    assert sum(result.losses[-3:]) < sum(result.losses[:3]) - 1.5  # clearly learning, not noise
    assert [(step, total) for step, total, _ in calls] == [(s, 15) for s in range(1, 16)]
    assert all("loss" in logs for _, _, logs in calls)
    # Only the adapter survives: no trainer scratch, no temp folder, no model card.
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["adapter"]
    assert sorted(p.name for p in result.adapter_path.iterdir()) == sorted(ADAPTER_FILES)
    assert json.loads((result.adapter_path / "adapter_config.json").read_text())["r"] == 8

    trained = load_variant(
        Variant("sft", str(tiny_base_dir), adapters=(str(result.adapter_path),)),
        cache_dir=tmp_path / "models",
    )
    after = trained.score(prompts, answers)
    assert sum(after) > sum(before) + 5.0
    assert sum(a > b for a, b in zip(after, before, strict=True)) >= 10


def test_loss_covers_only_the_answer_tokens(tiny_local, tmp_path):
    from models.scoring import split_prompt_completion

    prompts, answers = [m for m, _ in EXAMPLES], [a for _, a in EXAMPLES]
    answer_tokens = sum(len(split_prompt_completion(tiny_local.tokenizer, p, a)[1]) for p, a in EXAMPLES)
    expected = -sum(tiny_local.score(prompts, answers)) / answer_tokens

    # One batch of everything, logged before any update (LoRA starts as a no-op): the mean answer-token NLL.
    cfg = SFTRunConfig(epochs=1, batch_size=len(EXAMPLES), lora_dropout=0.0)
    result = run_sft(tiny_local, EXAMPLES, tmp_path / "run", cfg)

    assert result.losses[0] == pytest.approx(expected, rel=1e-4)


def test_caller_model_and_tokenizer_are_untouched(tiny_local, tmp_path):
    weights = _state(tiny_local.model)
    modules = [name for name, _ in tiny_local.model.named_modules()]
    forward = tiny_local.model.forward

    run_sft(tiny_local, EXAMPLES[:4], tmp_path / "run", SFTRunConfig(**{**FAST, "epochs": 1}))

    after = tiny_local.model.state_dict()
    assert after.keys() == weights.keys()
    assert all(after[k].equal(v) for k, v in weights.items())
    assert [name for name, _ in tiny_local.model.named_modules()] == modules  # no LoRA layers injected
    assert tiny_local.model.forward == forward  # TRL's fused-LM-head patch went on the copy
    assert not tiny_local.model.training
    assert tiny_local.tokenizer.padding_side == "left"


def test_should_stop_ends_training_early_and_keeps_the_partial_adapter(tiny_local, tmp_path):
    asked = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) >= 3

    calls = []
    cfg = SFTRunConfig(**{**FAST, "logging_steps": 2})
    result = run_sft(
        tiny_local,
        EXAMPLES,
        tmp_path / "run",
        cfg,
        should_stop=should_stop,
        progress=lambda *a: calls.append(a),
    )

    assert (result.steps, result.max_steps, result.stopped) == (3, 15, True)
    # Every step is reported once; only logging steps carry a loss.
    assert [(step, "loss" in logs) for step, _, logs in calls] == [(1, False), (2, True), (3, False)]
    assert len(result.losses) == 1
    assert sorted(p.name for p in result.adapter_path.iterdir()) == sorted(ADAPTER_FILES)


def test_limit_caps_the_examples(tiny_local, tmp_path):
    cfg = SFTRunConfig(**{**FAST, "epochs": 1, "limit": 5})
    result = run_sft(tiny_local, EXAMPLES, tmp_path / "run", cfg)
    assert (result.n_examples, result.steps) == (5, 2)


def test_failure_mid_training_leaves_no_adapter(tiny_local, tmp_path):
    def should_stop() -> bool:
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError, match="worker killed"):
        run_sft(tiny_local, EXAMPLES, tmp_path / "run", SFTRunConfig(**FAST), should_stop=should_stop)
    assert list((tmp_path / "run").iterdir()) == []


def test_failure_while_saving_leaves_no_half_written_adapter(tiny_local, tmp_path, monkeypatch):
    from peft import PeftModel

    def save_half(self, path, **kwargs):
        (path / "adapter_config.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(PeftModel, "save_pretrained", save_half)
    with pytest.raises(OSError, match="disk full"):
        run_sft(tiny_local, EXAMPLES[:4], tmp_path / "run", SFTRunConfig(**{**FAST, "epochs": 1}))
    assert list((tmp_path / "run").iterdir()) == []


def test_existing_adapter_is_refused_before_training(tiny_local, tmp_path):
    (tmp_path / "run" / "adapter").mkdir(parents=True)
    with pytest.raises(UserInputError, match="already exists"):
        run_sft(tiny_local, EXAMPLES, tmp_path / "run", SFTRunConfig(**FAST))


def test_prompts_longer_than_max_length_are_refused(tiny_local, tmp_path):
    with pytest.raises(UserInputError, match="max_length=4"):
        run_sft(tiny_local, EXAMPLES, tmp_path / "run", SFTRunConfig(**{**FAST, "max_length": 4}))
    assert list((tmp_path / "run").iterdir()) == []


@pytest.mark.parametrize(
    "examples, match",
    [
        ([], "at least one"),
        ([("not messages", "x")], "messages must be a non-empty list"),
        ([([{"role": "user"}], "x")], "'role' and 'content'"),
        ([([{"role": "user", "content": "q"}], "")], "non-empty string"),
        ([([{"role": "user", "content": "q"}],)], "pair"),
    ],
)
def test_bad_examples_are_refused(tiny_local, tmp_path, examples, match):
    with pytest.raises(UserInputError, match=match):
        run_sft(tiny_local, examples, tmp_path / "run", SFTRunConfig())


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("epochs", 1.5),
        ("learning_rate", 0),
        ("learning_rate", float("nan")),
        ("batch_size", -1),
        ("grad_accum", True),
        ("lora_r", 0),
        ("lora_alpha", -2),
        ("lora_dropout", 1.0),
        ("target_modules", "q_proj"),
        ("target_modules", ()),
        ("target_modules", ("q_proj", "lm_head")),
        ("max_length", 1),
        ("seed", -1),
        ("limit", 0),
        ("logging_steps", 0),
    ],
)
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(UserInputError, match=rf"^{field} .*got {re.escape(repr(value))}$"):
        SFTRunConfig(**{field: value})


def test_config_defaults_and_list_target_modules():
    cfg = SFTRunConfig(target_modules=["q_proj", "v_proj"])
    assert cfg.target_modules == ("q_proj", "v_proj")
    default = SFTRunConfig()
    # Effective batch 8 as 4 x 2: half the peak memory of batch 8 (a 49k-token vocabulary makes big logits).
    # One epoch: what the sft command and the Train tab have always run (issue 13 item 1).
    assert (default.epochs, default.learning_rate, default.batch_size, default.grad_accum) == (1, 2e-4, 4, 2)


def test_sft_examples_from_prompts_keeps_rows_with_a_gold_answer():
    @dataclass
    class Row:
        messages: list
        gold: object

    q = [{"role": "user", "content": "q"}]
    rows = [
        Row(q, {"answer": "A", "severity": "SEV2"}),
        Row(q, "B"),
        Row(q, None),
        Row(q, {"severity": "SEV1"}),
        Row(q, {"answer": ""}),
    ]
    assert sft_examples_from_prompts(rows) == [(q, "A"), (q, "B")]


@pytest.mark.slow
def test_sft_on_the_default_model_saves_a_loadable_adapter(models_cache, tmp_path):
    base = load_variant(Variant("base", DEFAULT_BASE), cache_dir=models_cache)
    examples = demo_examples(16)
    prompts, answers = [m for m, _ in examples], [a for _, a in examples]
    before = base.score(prompts, answers, max_length=256)

    # Batch 4 for one epoch keeps it to 4 steps of ~5 s on 2 cores (batch 8: ~10 s a step).
    result = run_sft(
        base, examples, tmp_path / "run", SFTRunConfig(epochs=1, batch_size=4, grad_accum=1, max_length=256)
    )

    assert (result.steps, result.n_examples) == (4, 16)
    assert sorted(p.name for p in result.adapter_path.iterdir()) == sorted(ADAPTER_FILES)
    trained = load_variant(
        Variant("sft", DEFAULT_BASE, adapters=(str(result.adapter_path),)), cache_dir=models_cache
    )
    after = trained.score(prompts, answers, max_length=256)
    assert sum(after) > sum(before)


def test_the_sft_flags_and_the_train_tab_form_build_the_same_settings():
    from common.flags import given
    from launch import build_parser
    from train.sft import sft_run_config
    from train.sft_config import SFT_FLAGS

    args = build_parser().parse_args(["sft", "--limit", "5"])
    # The tab's form as it loads (1 epoch) with "At most N examples" = 5; None is a blank field.
    tab = sft_run_config(epochs=1, limit=5, learning_rate=None)
    assert sft_run_config(**given(args, SFT_FLAGS)) == tab == SFTRunConfig(epochs=1, limit=5)
