"""Put trained variants on an inference server: merged and combined exports (admin), and the vLLM commands.

A `sft+dpo@N` adapter was trained on the merged `sft` model, so a server applies it on that merged checkpoint
(`export-merged sft`), or PrefLab folds SFT and DPO into one adapter on the original base (`export-adapter`).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.access import Role

log = logging.getLogger(__name__)

__all__ = [
    "ExportReport",
    "append_serving_to_report",
    "dpo_serving_lines",
    "export_adapter",
    "export_merged",
    "served_base",
]

RUNTIME_NOTE = (
    "or, on a vLLM server of that base already running with --enable-lora and "
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (URL=http://HOST:PORT):"
)


@dataclass
class ExportReport:
    """An export's result and the commands that serve it."""

    exported: Any  # models.adapter_export.Exported
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        e = self.exported
        what = "merged checkpoint" if e.kind == "merged" else f"combined LoRA adapter (rank {e.rank})"
        head = f"exported {e.variant} as a {what} to {e.path} ({e.bytes / 2**30:.2f} GiB, {e.dtype})"
        return "\n".join([head, *self.lines])


def export_merged(ctx, variant_name: str, out, *, user: str | None = None, dtype=None) -> ExportReport:
    """Write `variant_name` merged (base + all adapters) to `out`; list the LoRA modules that apply on it."""
    ctx.access.require(user, Role.ADMIN)
    from common.context import variant_resolver
    from models.adapter_export import (
        adapter_rank,
        lora_module_name,
        vllm_commands,
    )
    from models.adapter_export import (
        export_merged as write_merged,
    )

    variant = variant_resolver(ctx.store)(variant_name)
    exported = write_merged(variant, out, cache_dir=ctx.cfg.paths.models, dtype=dtype)
    children = _children(ctx.store, variant)
    if not children:
        lines = [f"serve it: vllm serve {shlex.quote(str(exported.path))}"]
        return ExportReport(exported, lines)
    modules = {lora_module_name(row.name): row.adapters[-1] for row in children}
    rank = max(adapter_rank(path) for path in modules.values())
    serve, *loads = vllm_commands(exported.path, modules, max_rank=rank)
    lines = [
        f"serve it with its {len(modules)} DPO adapter(s) as LoRA modules:",
        f"  {serve}",
        RUNTIME_NOTE,
        *(f"  {line}" for line in loads),
    ]
    return ExportReport(exported, lines)


def export_adapter(ctx, variant_name: str, out, *, user: str | None = None) -> ExportReport:
    """Write one LoRA adapter equal to all of `variant_name`'s adapters, to serve on its original base."""
    ctx.access.require(user, Role.ADMIN)
    from common.context import variant_resolver
    from models.adapter_export import export_combined, lora_module_name, vllm_commands

    variant = variant_resolver(ctx.store)(variant_name)
    exported = export_combined(variant, out, cache_dir=ctx.cfg.paths.models)
    name = lora_module_name(variant.name)
    serve, load = vllm_commands(exported.base, {name: exported.path}, max_rank=exported.rank)
    lines = [f"serve it on its base {exported.base}:", f"  {serve}", RUNTIME_NOTE, f"  {load}"]
    return ExportReport(exported, lines)


def served_base(ctx, row) -> str | None:
    """The checkpoint a server loads for a variant without adapters: its folder, Hub id, or converted cache."""
    from models.variants import DEFAULT_BASE, looks_local

    if row.base == DEFAULT_BASE:
        from models.gguf_cache import default_cache_path

        return str(default_cache_path(ctx.cfg.paths.models))
    return str(Path(row.base).expanduser()) if looks_local(row.base) else row.base


def dpo_serving_lines(ctx, model_name: str, parent, adapter) -> list[str]:
    """How to put a finished DPO run's adapter on a vLLM server: exact commands with this home's paths.

    `parent` is the variant row the run trained on (its base and adapters); `adapter` the run's adapter folder.
    """
    from models.adapter_export import adapter_rank, lora_module_name, vllm_commands

    q = shlex.quote
    name = lora_module_name(model_name)
    rank = adapter_rank(adapter)
    launch = f"python launch.py --home {q(str(ctx.cfg.home))} models"
    if parent.adapters:
        # The adapter was trained on the merged parent: a server needs that merged checkpoint as its base.
        merged = ctx.cfg.paths.exports / f"{lora_module_name(parent.name)}-merged"
        serve, load = vllm_commands(merged, {name: adapter}, max_rank=rank)
        lines = [
            f"serve {model_name} on vLLM: its adapter applies on the merged {parent.name} model, not on the base",
            f"  {launch} export-merged {q(parent.name)} {q(str(merged))}   (once per {parent.name})",
            f"  {serve}",
        ]
    else:
        serve, load = vllm_commands(served_base(ctx, parent), {name: adapter}, max_rank=rank)
        lines = [f"serve {model_name} on vLLM: its adapter applies on {parent.name}'s base", f"  {serve}"]
    lines += [RUNTIME_NOTE, f"  {load}"]
    if parent.adapters:
        combined = ctx.cfg.paths.exports / name
        lines += [
            f"or one adapter on the original base: {launch} export-adapter {q(model_name)} {q(str(combined))}"
        ]
    return lines


def _children(store, variant) -> list:
    """Registered variants that are `variant` plus exactly one more adapter (its DPO runs)."""
    parent = list(variant.adapters)
    return [
        row
        for row in store.list_models()
        if row.base == variant.base
        and len(row.adapters) == len(parent) + 1
        and list(row.adapters[:-1]) == parent
    ]


def append_serving_to_report(report: Path, lines: list[str]) -> None:
    """Add the serving commands to a run's report.md as a code block (paths are shown literally)."""
    text = "\n".join(lines)
    # A fence longer than any backtick run in the paths, so no path can close the block early.
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    with open(report, "a", encoding="utf-8") as f:
        f.write(f"\n## Serve it on vLLM\n\n{fence}text\n{text}\n{fence}\n")


def _longest_backtick_run(text: str) -> int:
    import re

    return max((len(m) for m in re.findall(r"`+", text)), default=0)
