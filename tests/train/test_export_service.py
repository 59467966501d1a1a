"""Exports for inference servers through the service (admin only), and the serving commands a finished run shows."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from common.access import Access, Role, User
from common.errors import PermissionDeniedError
from tests.models.tiny_models import save_lora
from tests.train.dpo_fixtures import in_process, make_ctx, tiny_config, tiny_sft  # noqa: F401


@pytest.fixture
def ctx(tmp_path, tiny_sft):  # noqa: F811
    context = make_ctx(tmp_path / "home", tiny_sft, n_triples=16)
    context.access = Access((User("ann", "pw", Role.ANNOTATOR), User("boss", "pw", Role.ADMIN)))
    yield context
    context.store.close()


@pytest.fixture
def dpo_variant(ctx, tiny_sft, tmp_path):  # noqa: F811
    """`sft+dpo@7`: the SFT adapter plus a non-zero DPO-like adapter, registered as a run would register it."""
    dpo = save_lora(tiny_sft.base, tmp_path / "runs7-adapter", seed=4, targets=["q_proj", "v_proj"])
    ctx.store.add_model("sft+dpo@7", str(tiny_sft.base), [str(tiny_sft.adapter), str(dpo)], "dpo")
    return Path(dpo)


def test_exports_are_admin_only(ctx, tmp_path):
    from train.export_service import export_adapter, export_merged

    for export in (export_merged, export_adapter):
        with pytest.raises(PermissionDeniedError, match="admin"):
            export(ctx, "sft", tmp_path / "out", user="ann")
        with pytest.raises(PermissionDeniedError):
            export(ctx, "sft", tmp_path / "out", user=None)  # auth on: no login, no export
    assert not (tmp_path / "out").exists()


def test_export_merged_names_the_dpo_adapters_that_apply_on_it(ctx, dpo_variant, tmp_path):
    from transformers import AutoModelForCausalLM

    from train.export_service import export_merged

    out = tmp_path / "sft-merged"
    report = export_merged(ctx, "sft", out, user="boss")
    text = report.text()

    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2
    assert text.splitlines()[0].startswith(f"exported sft as a merged checkpoint to {out} (")
    assert f"vllm serve {out} --enable-lora --max-lora-rank 8 --lora-modules sft+dpo-7={dpo_variant}" in text
    assert f'"lora_name": "sft+dpo-7", "lora_path": "{dpo_variant}"' in text
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in text


def test_export_adapter_serves_on_the_original_base(ctx, dpo_variant, tiny_sft, tmp_path):  # noqa: F811
    from train.export_service import export_adapter

    out = tmp_path / "combined"
    text = export_adapter(ctx, "sft+dpo@7", out, user="boss").text()

    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    assert (
        f"vllm serve {tiny_sft.base} --enable-lora --max-lora-rank 8 --lora-modules sft+dpo-7={out}" in text
    )


def test_a_finished_dpo_run_shows_how_to_serve_its_adapter(ctx, monkeypatch, capsys):
    from train import service
    from train.cli import cmd_train
    from train.rundir import REPORT

    result = service.run_training(ctx, tiny_config(max_steps=2, kl_every=0), launcher=in_process())
    assert result.status == "done", result.error
    name, home = result.model_name, ctx.cfg.home
    adapter, merged = result.run_dir / "adapter", home / "exports" / "sft-merged"
    module = name.replace("@", "-")
    expected = [
        f"python launch.py --home {home} models export-merged sft {merged}",
        f"vllm serve {merged} --enable-lora --max-lora-rank 8 --lora-modules {module}={adapter}",
        "curl -X POST $URL/v1/load_lora_adapter -H 'Content-Type: application/json' -d "
        + shlex.quote(json.dumps({"lora_name": module, "lora_path": str(adapter)})),
    ]
    for line in expected:
        assert any(line in got for got in result.summary["serving"]), line
    # The Train tab shows report.md: the same commands, in a code block.
    report = (result.run_dir / REPORT).read_text()
    assert "## Serve it on vLLM" in report and all(line in report for line in expected)
    # The CLI prints them after the one-line summary.
    monkeypatch.setattr(service, "run_training", lambda *a, **k: result)
    from launch import build_parser

    capsys.readouterr()  # the in-process trainer's own logs
    assert cmd_train(build_parser().parse_args(["train"]), ctx) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"run #{result.run_id} done")
    assert all(any(line in got for got in printed[1:]) for line in expected)


def test_a_run_on_a_variant_without_adapters_serves_on_its_base(ctx, tiny_sft, tmp_path):  # noqa: F811
    from train.export_service import dpo_serving_lines

    parent = ctx.store.get_model("base")
    adapter = save_lora(tiny_sft.base, tmp_path / "a", seed=9, targets=["q_proj"])
    text = "\n".join(dpo_serving_lines(ctx, "base+dpo@3", parent, adapter))
    assert (
        f"vllm serve {tiny_sft.base} --enable-lora --max-lora-rank 8 --lora-modules base+dpo-3={adapter}"
        in text
    )
    assert "export-merged" not in text and "export-adapter" not in text


def test_cli_export_merged_prints_the_commands_and_refuses_a_used_folder(tmp_path, tiny_sft, capsys):  # noqa: F811
    from launch import main

    home = tmp_path / "cli-home"
    make_ctx(home, tiny_sft).store.close()
    out = tmp_path / "merged"
    assert main(["--home", str(home), "models", "export-merged", "sft", str(out)]) == 0
    assert f"exported sft as a merged checkpoint to {out}" in capsys.readouterr().out
    assert (out / "model.safetensors").is_file()
    assert main(["--home", str(home), "models", "export-merged", "sft", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: output folder {out} already holds files; give a new or empty folder"
    assert main(["--home", str(home), "models", "export-adapter", "base", str(tmp_path / "a")]) == 2
    assert "has no adapters" in capsys.readouterr().err
