"""The adapter's model card: lineage (run, variants, data snapshot), training settings, the latest eval."""

from __future__ import annotations

import json
from typing import Any

from .export_cards import fence, front_matter, mask_secrets, public_name, scrub, table

KEY_TRAINING_FIELDS = (
    "beta",
    "loss_type",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "max_length",
    "truncation_mode",
    "seed",
)


def model_card(
    *,
    yaml_text: str,
    title: str,
    repo_id: str | None,
    run: dict,
    variants: list[str],
    evaluation,
    dataset_repo: str | None,
) -> str:
    """README.md for a DPO adapter: lineage, training settings, the latest eval table."""
    result = run.get("result") or {}
    config = scrub(run.get("config") or {})
    size = [f"{k.replace('_', ' ')} {result[k]}" for k in ("train_pairs", "val_pairs") if k in result]
    lineage = [
        ["run", f"#{run['id']} ({run['kind']}, {run['status']})"],
        ["policy variant", run.get("model")],
        ["base model", public_name(run.get("base"))],
        [
            "adapters below this one",
            ", ".join(public_name(a) for a in run.get("model_adapters") or []) or "none",
        ],
        ["reference model", run.get("ref_model")],
        ["dataset snapshot hash", run.get("dataset_hash")],
        ["dataset size", ", ".join(size) or "not recorded"],
        ["dataset", dataset_repo or "not published with this adapter"],
        ["trained", f"{_when(run.get('created_at'))} to {_when(run.get('ended_at'))}"],
    ]
    if result.get("sources"):
        lineage.append(["label sources", ", ".join(f"{k} {v}" for k, v in sorted(result["sources"].items()))])
    if result.get("steps") is not None:
        lineage.append(["steps", result["steps"]])
    lines = [
        *front_matter(yaml_text, title),
        "A LoRA adapter trained with DPO (TRL `DPOTrainer` + PEFT) by PrefLab, on preference pairs labelled by "
        "people with an LLM judge's suggestions. It applies on top of the policy variant below.",
        "",
        "## Lineage",
        "",
        *table(["", ""], lineage),
        "",
        "## Training settings",
        "",
    ]
    if result.get("settings"):
        lines += [mask_secrets(str(result["settings"])), ""]
    key_rows = [
        [k, json.dumps(config[k]) if isinstance(config[k], list | dict) else config[k]]
        for k in KEY_TRAINING_FIELDS
        if k in config
    ]
    if key_rows:
        lines += [*table(["setting", "value"], key_rows), ""]
    if config:
        lines += [
            "<details><summary>Full training config</summary>",
            "",
            *fence(json.dumps(config, indent=2, sort_keys=True, default=str), "json"),
            "",
            "</details>",
            "",
        ]
    final = result.get("final") or {}
    if final:
        lines += [
            "Final metrics:",
            "",
            *table(["metric", "value"], [[k, v] for k, v in sorted(final.items())]),
            "",
        ]
    lines += ["## Evaluation", ""]
    if evaluation is None:
        lines += [
            f"No evaluation of this adapter yet (variants: {', '.join(variants) or 'none registered'}). "
            "Run `python launch.py eval --variants base,sft,sft+dpo@RUN --prompts heldout`.",
            "",
        ]
    else:
        info, scores = evaluation
        lines += [
            f"Latest automatic evaluation: eval run #{info['id']} on the {info['prompt_set']} prompts "
            f"({_when(info.get('created_at'))}); mean score per variant and scorer.",
            "",
            *table(
                ["variant", "scorer", "mean", "prompts"],
                [
                    [r.variant, r.scorer, round(float(r.mean), 4) if r.mean == r.mean else None, int(r.n)]
                    for r in scores.itertuples()
                ],
            ),
            "",
        ]
    lines += [
        "## Use",
        "",
        *fence(
            "from peft import PeftModel\nfrom transformers import AutoModelForCausalLM\n\n"
            f'base = AutoModelForCausalLM.from_pretrained("{public_name(run.get("base"))}")\n'
            "# apply the adapters below this one first (see Lineage), then:\n"
            f'model = PeftModel.from_pretrained(base, "{repo_id or "<this repo>"}")',
            "python",
        ),
        "",
    ]
    return "\n".join(lines)


def _when(value: Any) -> str:
    if value is None:
        return "-"
    return value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "isoformat") else str(value)
