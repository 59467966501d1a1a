"""LocalModel.score against the reference log-probs TRL's DPOTrainer computes itself."""

from __future__ import annotations

import copy
import warnings

import pytest

from common.errors import ModelError
from models.scoring import split_prompt_completion

TRIPLES = [
    (
        [{"role": "user", "content": "What is the capital of France?"}],
        "The capital of France is Paris.",
        "Berlin",
    ),
    (
        [
            {"role": "system", "content": "You help people learn."},
            {"role": "user", "content": "Name two animals."},
        ],
        "A cat and a dog.",
        "Two: a horse, a cow, and a very small mouse that likes to eat seeds at night.",
    ),
    (
        [
            {"role": "user", "content": "Name a river."},
            {"role": "assistant", "content": "The river Rome."},
            {"role": "user", "content": "Is that good?"},
        ],
        "No, Rome is a city.",
        "yes",
    ),
    ([{"role": "user", "content": "hello"}], "\nHello world!\n", " hi "),
]


def trl_ref_logps(model, tokenizer, tmp_path, **config):
    """(ref_chosen_logps, ref_rejected_logps) from a real DPOTrainer's precompute pass over TRIPLES."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = [
        {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
        for prompt, chosen, rejected in TRIPLES
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keep_end's and gradient_checkpointing's deprecation notices
        args = DPOConfig(
            output_dir=str(tmp_path / "dpo"),
            precompute_ref_log_probs=True,
            precompute_ref_batch_size=3,
            per_device_train_batch_size=2,
            report_to=[],
            use_cpu=True,
            bf16=False,
            fp16=False,
            **config,
        )
        # TRL patches the model's forward (fused LM head) and may touch its config: give it its own copy.
        trainer = DPOTrainer(
            model=copy.deepcopy(model),
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )
    data = trainer.train_dataset
    return list(data["ref_chosen_logps"]), list(data["ref_rejected_logps"])


@pytest.mark.parametrize(
    "truncation",
    [
        {},
        {"max_length": 48, "truncation_mode": "keep_start"},
        {"max_length": 24, "truncation_mode": "keep_end"},
    ],
    ids=["trl-defaults", "keep_start-48", "keep_end-24"],
)
def test_score_equals_trl_reference_logps(local_model, tiny_model, tokenizer, tmp_path, truncation):
    chosen_ref, rejected_ref = trl_ref_logps(tiny_model, tokenizer, tmp_path, **truncation)
    assert len(chosen_ref) == len(TRIPLES)  # no example dropped: every prompt fits in max_length
    prompts = [p for p, _, _ in TRIPLES]
    chosen = local_model.score(prompts, [c for _, c, _ in TRIPLES], batch_size=3, **truncation)
    rejected = local_model.score(prompts, [r for _, _, r in TRIPLES], batch_size=3, **truncation)
    # TRL stores its reference log-probs in a float32 dataset column, even for a float64 model: ~1e-5 at these sizes.
    assert chosen == pytest.approx(chosen_ref, abs=1e-4)
    assert rejected == pytest.approx(rejected_ref, abs=1e-4)


def test_truncation_settings_change_the_score(local_model):
    prompts, responses = [TRIPLES[1][0]], [TRIPLES[1][2]]
    full = local_model.score(prompts, responses)
    assert local_model.score(prompts, responses, max_length=48) != pytest.approx(full)
    assert local_model.score(prompts, responses, max_length=None) == pytest.approx(full, abs=1e-12)


def test_score_is_padding_and_batch_invariant(local_model):
    prompts = [p for p, _, _ in TRIPLES] * 2
    responses = [c for _, c, _ in TRIPLES] + [r for _, _, r in TRIPLES]
    batched = local_model.score(prompts, responses, batch_size=8)
    alone = [local_model.score([p], [r], batch_size=1)[0] for p, r in zip(prompts, responses, strict=True)]
    assert batched == pytest.approx(alone, abs=1e-9)
    assert all(value < 0 for value in batched)


def test_completion_keeps_end_of_turn_tokens(tokenizer):
    prompt_ids, completion_ids = split_prompt_completion(tokenizer, TRIPLES[0][0], "Paris.")
    assert tokenizer.decode(prompt_ids).endswith("<|im_start|>assistant\n")
    # The completion is what the template adds after the prompt: the answer, the end-of-turn marker and newline.
    assert tokenizer.decode(completion_ids) == "Paris.<|im_end|>\n"


def test_score_rejects_bad_arguments(local_model):
    prompt = TRIPLES[0][0]
    with pytest.raises(ModelError, match="one response per prompt"):
        local_model.score([prompt, prompt], ["a"])
    with pytest.raises(ModelError, match="truncation_mode.*'keep_middle'"):
        local_model.score([prompt], ["a"], truncation_mode="keep_middle")
    with pytest.raises(ModelError, match="max_length.*0"):
        local_model.score([prompt], ["a"], max_length=0)
    with pytest.raises(ModelError, match="strings"):
        local_model.score([prompt], [None])
