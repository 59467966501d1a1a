"""Exports for inference servers: the merged checkpoint and the combined (cat) LoRA adapter, on the tiny model."""

from __future__ import annotations

import json

import pytest

from common.errors import ModelError, UserInputError
from tests.models.tiny_models import save_lora

PROMPT = "<|im_start|>user\nwhat color is the cat?<|im_end|>\n<|im_start|>assistant\nthe cat is red."


def _logits(model, tokenizer_dir):
    import torch
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tokenizer_dir)(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits[0].double()


def _merged_logits(variant, tokenizer_dir, cache):
    from models.local import load_variant

    return _logits(load_variant(variant, cache_dir=cache).model, tokenizer_dir)


def _max_diff(a, b) -> float:
    return float((a - b).abs().max())


def _lora(base_dir, out, seed: int, targets: list[str], **extra):
    """A non-zero LoRA adapter with extra LoraConfig settings (rsLoRA, a layer subset, ...)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False, **extra)
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def dpo_on_merged_sft(tmp_path_factory, base_dir, adapter_dirs):
    """A DPO-like adapter trained on the *merged* base+SFT checkpoint, with the SFT adapter's targets."""
    from transformers import AutoTokenizer

    from models.local import Variant, load_variant

    root = tmp_path_factory.mktemp("dpo-on-sft")
    merged = load_variant(Variant("sft", str(base_dir), (str(adapter_dirs[0]),)), cache_dir=root / "cache")
    merged.model.save_pretrained(root / "sft-merged")
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(root / "sft-merged")
    return save_lora(root / "sft-merged", root / "dpo", seed=3, targets=["q_proj", "v_proj"])


def test_merged_export_loads_with_transformers_and_equals_the_merged_variant(
    base_dir, adapter_dirs, tmp_path
):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.adapter_export import EXPORT_FILE, export_merged
    from models.local import Variant

    variant = Variant("sft+dpo@1", str(base_dir), tuple(str(a) for a in adapter_dirs))
    out = tmp_path / "merged"
    result = export_merged(variant, out, cache_dir=tmp_path / "cache")

    assert result.path == out and result.dtype == "float64"
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    exported = AutoModelForCausalLM.from_pretrained(out)
    assert exported.dtype == torch.float64  # the variant's dtype, not transformers' float32 default
    got = _logits(exported, out)
    assert _max_diff(got, _merged_logits(variant, base_dir, tmp_path / "cache")) < 1e-5
    # The adapters really change the model, so a base-only export would fail the equality above.
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
    assert _max_diff(got, _logits(base, base_dir)) > 1e-2
    tokenizer, original = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(base_dir)
    assert tokenizer.chat_template == original.chat_template
    assert tokenizer.pad_token == original.pad_token  # LocalModel's padding tweaks are not exported
    info = json.loads((out / EXPORT_FILE).read_text())
    assert info["variant"] == "sft+dpo@1" and info["adapters"] == [str(a) for a in adapter_dirs]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial folder left


@pytest.mark.parametrize("layout", ["same-targets", "different-targets"])
def test_combined_adapter_on_the_base_equals_the_merged_variant(
    layout, base_dir, adapter_dirs, dpo_on_merged_sft, tmp_path
):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from models.adapter_export import export_combined
    from models.local import Variant

    second = dpo_on_merged_sft if layout == "same-targets" else adapter_dirs[1]
    variant = Variant("sft+dpo@2", str(base_dir), (str(adapter_dirs[0]), str(second)))
    out = tmp_path / "combined"
    result = export_combined(variant, out, cache_dir=tmp_path / "cache")

    assert result.rank == 8  # 4 + 4: cat keeps both adapters' ranks
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
    served = PeftModel.from_pretrained(base, str(out)).eval()  # what a server does: one LoRA on the base
    got = _logits(served, base_dir)
    assert _max_diff(got, _merged_logits(variant, base_dir, tmp_path / "cache")) < 1e-4
    sft_only = Variant("sft", str(base_dir), (str(adapter_dirs[0]),))
    assert _max_diff(got, _merged_logits(sft_only, base_dir, tmp_path / "cache")) > 1e-2


def test_combined_adapter_is_exact_when_the_first_adapter_uses_rslora(base_dir, adapter_dirs, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from models.adapter_export import export_combined
    from models.local import Variant

    first = _lora(base_dir, tmp_path / "rs", seed=5, targets=["q_proj", "k_proj"], use_rslora=True)
    variant = Variant("v", str(base_dir), (str(first), str(adapter_dirs[1])))
    export_combined(variant, tmp_path / "out", cache_dir=tmp_path / "cache")
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
    got = _logits(PeftModel.from_pretrained(base, str(tmp_path / "out")).eval(), base_dir)
    assert _max_diff(got, _merged_logits(variant, base_dir, tmp_path / "cache")) < 1e-4


def test_combination_that_cannot_be_exact_is_refused_in_one_line(base_dir, adapter_dirs, tmp_path):
    from models.adapter_export import export_combined
    from models.local import Variant

    # The combined adapter inherits the first adapter's layer subset, so the second's layer-0 delta would be lost.
    first = _lora(base_dir, tmp_path / "l1", seed=6, targets=["q_proj"], layers_to_transform=[1])
    variant = Variant("v", str(base_dir), (str(first), str(adapter_dirs[1])))
    with pytest.raises(UserInputError, match="do not combine exactly") as err:
        export_combined(variant, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert "\n" not in str(err.value) and "export-merged" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_dora_adapters_are_refused_before_loading(base_dir, adapter_dirs, tmp_path):
    import shutil

    from models.adapter_export import export_combined
    from models.local import Variant

    dora = shutil.copytree(adapter_dirs[1], tmp_path / "dora")
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    variant = Variant("v", str(base_dir), (str(adapter_dirs[0]), str(dora)))
    with pytest.raises(UserInputError, match="DoRA"):
        export_combined(variant, tmp_path / "out", cache_dir=tmp_path / "cache")
    with pytest.raises(UserInputError, match="no adapters"):
        export_combined(Variant("base", str(base_dir)), tmp_path / "out", cache_dir=tmp_path / "cache")


def test_an_output_folder_holding_files_is_refused_and_left_alone(base_dir, tmp_path):
    from models.adapter_export import export_merged
    from models.local import Variant

    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="already holds files") as err:
        export_merged(Variant("base", str(base_dir)), out, cache_dir=tmp_path / "cache")
    assert "\n" not in str(err.value)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_a_failed_export_leaves_nothing_behind(base_dir, tmp_path, monkeypatch):
    import models.adapter_export as export

    # The provenance file is written last: make that write fail after the weights are already on disk.
    monkeypatch.setattr(export, "EXPORT_FILE", "missing-dir/preflab_export.json")
    out = tmp_path / "merged"
    with pytest.raises(ModelError, match="cannot write the export"):
        export.export_merged(export.Variant("base", str(base_dir)), out, cache_dir=tmp_path / "cache")
    assert list(tmp_path.iterdir()) == []  # neither the output nor a partial folder beside it


def test_server_names_ranks_and_commands():
    from models.adapter_export import lora_module_name, vllm_commands, vllm_max_lora_rank

    assert lora_module_name("sft+dpo@3") == "sft+dpo-3"
    assert lora_module_name("my sft/v2=x") == "my-sft-v2-x"
    assert [vllm_max_lora_rank(r) for r in (1, 4, 16, 17, 300)] == [1, 8, 16, 32, 320]
    with pytest.raises(ModelError):
        vllm_max_lora_rank(1024)
    serve, load = vllm_commands("/m/it's merged", {"sft+dpo-3": "/runs/3/adapter"}, max_rank=16)
    assert serve == (
        "vllm serve '/m/it'\"'\"'s merged' --enable-lora --max-lora-rank 16 --lora-modules sft+dpo-3=/runs/3/adapter"
    )
    assert load.startswith("curl -X POST $URL/v1/load_lora_adapter ")
    assert '{"lora_name": "sft+dpo-3", "lora_path": "/runs/3/adapter"}' in load
