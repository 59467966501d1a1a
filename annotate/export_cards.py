"""The dataset card (how the data was made) and the Markdown helpers both Hub cards use."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from common.vocab import ExportTies, LabelSource

from .export import COLUMNS, ExportFilters

# Per-response keys (seeds, slots, source rows, scores): not settings, so left out of the settings table.
PER_ROW_KEYS = {"seed", "slot", "row", "imported_from", "score", "prefix", "cell"}
SETTING_KEYS = ("temperature", "top_p", "max_new_tokens", "strategy")
# Config keys never published: credentials, and local folders that say nothing about the training.
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|api_key|apikey|credential|auth)", re.I)
_LOCAL_KEY = re.compile(r"(_dir|_path|_file)$|^(output_dir|logging_dir|report|run_dir)$")
# Environment variables whose values must never reach a published file.
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "ANTHROPIC_API_KEY", "OPENAI_API_KEY")


def size_category(n: int) -> str:
    """The Hub's size_categories bucket for n rows."""
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if n < limit:
            return label
    return "10M<n<100M"


def public_name(value: str | None) -> str:
    """A model id as published: Hub ids as they are, local paths by their folder name only."""
    if not value:
        return "-"
    if looks_local(value):
        return f"{Path(value).name} (local)"
    return value


def looks_local(value: str) -> bool:
    return value.startswith(("/", "~", "./", "../", "\\")) or os.path.isabs(value) or Path(value).exists()


def scrub(value: Any) -> Any:
    """A config as publishable data: credential-like and local-path keys removed, secrets masked."""
    if isinstance(value, dict):
        return {
            str(k): scrub(v)
            for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
            if not _SECRET_KEY.search(str(k)) and not _LOCAL_KEY.search(str(k)) and not str(k).startswith("_")
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return mask_secrets(value)
    return value


def mask_secrets(text: str) -> str:
    """`text` with the values of known secret environment variables replaced."""
    for name in SECRET_ENV:
        secret = os.environ.get(name, "").strip()
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return text


def cell(value: Any) -> str:
    """A value as one Markdown table cell."""
    if value is None or (isinstance(value, float) and value != value):  # None and pandas' NaN
        return "-"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def front_matter(yaml_text: str, title: str) -> list[str]:
    """A card's first lines: the YAML metadata block the Hub reads, then the title."""
    return ["---", yaml_text.rstrip("\n"), "---", "", f"# {title}", ""]


def fence(text: str, info: str = "") -> list[str]:
    """A fenced block that the text cannot close early."""
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return [f"{ticks}{info}", text.rstrip("\n"), ticks]


# -- dataset card -----------------------------------------------------------------------------


def dataset_card(
    *,
    yaml_text: str,
    title: str,
    repo_id: str,
    frame,
    by_split: dict[str, int],
    filters: ExportFilters,
    dropped: dict[str, int],
    stats: dict,
    models: dict[str, dict],
    rubrics: dict[str, str | None],
) -> str:
    """README.md for the dataset: YAML front matter, then how the data was made."""
    n = int(len(frame))
    lines = [
        *front_matter(yaml_text, title),
        f"{n} preference pairs for DPO, collected with PrefLab (human-in-the-loop annotation with an LLM judge's "
        "suggestions). Splits: " + ", ".join(f"{s} {k}" for s, k in by_split.items() if k) + ".",
        "",
        "Each row is in TRL's conversational preference format (`prompt`, `chosen`, `rejected` as message lists) "
        "and trains with TRL's `DPOTrainer` as is:",
        "",
        *fence(
            "from datasets import load_dataset\n"
            "from trl import DPOConfig, DPOTrainer\n\n"
            f'dataset = load_dataset("{repo_id}")\n'
            'trainer = DPOTrainer(model="<your SFT model>", args=DPOConfig(output_dir="dpo"), '
            'train_dataset=dataset["train"])',
            "python",
        ),
        "",
        "The `heldout` split holds the prompts kept out of training for evaluation.",
        "",
        "## How the data was made",
        "",
        *_prompts_section(frame),
        *_responses_section(frame, models),
        *_labels_section(frame, filters, dropped),
        *_judge_section(frame, rubrics),
        *_agreement_section(frame, stats),
        "## Columns",
        "",
        *table(["column", "meaning"], [[f"`{k}`", v] for k, v in COLUMNS.items()]),
        "",
    ]
    return "\n".join(lines)


def _prompts_section(frame) -> list[str]:
    prompts = frame.drop_duplicates("prompt_id")
    counts = Counter(prompts["prompt_source"])
    rows = [[src, k] for src, k in sorted(counts.items())]
    return [
        "### Prompts",
        "",
        f"{len(prompts)} distinct prompts, by source:",
        "",
        *table(["source", "prompts"], rows),
        "",
    ]


def _responses_section(frame, models: dict[str, dict]) -> list[str]:
    responses = Counter(list(frame["chosen_model"]) + list(frame["rejected_model"]))
    rows = []
    for name, k in sorted(responses.items()):
        info = models.get(name, {})
        adapters = ", ".join(public_name(a) for a in info.get("adapters", [])) or "-"
        base = info.get("base") if info.get("kind") != "imported" else "(responses from a dataset)"
        rows.append(
            [
                name,
                info.get("kind", "-"),
                public_name(base) if info.get("kind") != "imported" else base,
                adapters,
                k,
            ]
        )
    settings: Counter = Counter()
    for model_col, params_col in (("chosen_model", "chosen_params"), ("rejected_model", "rejected_params")):
        for model, params in zip(frame[model_col], frame[params_col], strict=True):
            if not isinstance(params, dict) or "imported_from" in params:
                continue
            key = tuple(params.get(k) for k in SETTING_KEYS)
            few_shot = bool(params.get("prefix"))
            settings[(model, *key, few_shot)] += 1
    lines = ["### Responses", "", *table(["variant", "kind", "base", "adapters", "responses"], rows), ""]
    if settings:
        lines += [
            "Generation settings (sampled by PrefLab from the variants above; every response's seed is recorded "
            "in `chosen_params` / `rejected_params`):",
            "",
            *table(
                ["variant", *SETTING_KEYS, "few-shot prefix", "responses"],
                [[*key[:-1], "yes" if key[-1] else "no", k] for key, k in sorted(settings.items(), key=str)],
            ),
            "",
        ]
    else:
        lines += ["No response was generated by PrefLab: every response comes from an imported dataset.", ""]
    return lines


def _labels_section(frame, filters: ExportFilters, dropped: dict[str, int]) -> list[str]:
    by_who = Counter(zip(frame["source"], frame["annotator"], strict=True))
    decisions = Counter(frame["decision"])
    left_out = ", ".join(f"{k} {why}" for why, k in dropped.items() if k) or "none"
    tie_line = (
        f"Tie policy: ties and both-bad labels are **dropped** ({dropped.get('ties/both-bad', 0)} left out), "
        "so every row has a real preference."
        if filters.ties == ExportTies.DROP
        else "Tie policy: ties and both-bad labels are **kept**; `decision` says which rows they are "
        "(`chosen` is then simply gen_a). Drop them before training unless your loss handles them."
    )
    sources = {
        LabelSource.HUMAN: "a person's vote in the Annotate tab (the judge's suggestion may have been shown: see `suggestion_shown`)",
        LabelSource.JUDGE: "a judge verdict consistent in both presentation orders, accepted as a label",
        LabelSource.IMPORT: "a preference taken from an existing dataset (annotator = the dataset)",
    }
    return [
        "### Labels",
        "",
        "Label sources: "
        + "; ".join(f"**{s}**: {sources[s]}" for s in sorted(set(frame["source"])) if s in sources)
        + ".",
        "",
        *table(["source", "annotator", "rows"], [[s, a, k] for (s, a), k in sorted(by_who.items())]),
        "",
        "Decisions: " + ", ".join(f"{d} {k}" for d, k in sorted(decisions.items())) + ".",
        "",
        tie_line,
        "",
        f"Filters: {filters.describe()}. Rows left out by them: {left_out}.",
        "",
    ]


def _judge_section(frame, rubrics: dict[str, str | None]) -> list[str]:
    judged = frame[frame["judge"].notna()]
    lines = ["### Judge", ""]
    if judged.empty:
        return [*lines, "No pair in this dataset has a judge verdict.", ""]
    rows = []
    for (judge, model, rubric), g in judged.groupby(["judge", "judge_model", "judge_rubric"], dropna=False):
        verdicts = g["judge_verdict"]
        agree = (verdicts == g["decision"]).sum()
        rows.append(
            [judge, model, rubric, len(g), int((verdicts == "unsure").sum()), f"{agree / len(g):.1%}"]
        )
    lines += [
        "A judge (an LLM, or PrefLab's rule-based judge when no API key was set) compared each pair in both "
        "presentation orders; a verdict counts only when both orders agree (otherwise `unsure`).",
        "",
        *table(["judge", "model", "rubric hash", "pairs", "unsure", "label = verdict"], rows),
        "",
    ]
    for digest in sorted({r for r in judged["judge_rubric"] if isinstance(r, str)}):
        text = rubrics.get(digest)
        if text:
            excerpt = "\n".join(text.strip().splitlines()[:25])
            lines += [f"Rubric `{digest}` (excerpt):", "", *fence(excerpt, "markdown"), ""]
        else:
            lines += [f"Rubric `{digest}`: a custom rubric; its text is not stored with the verdicts.", ""]
    return lines


def _agreement_section(frame, stats: dict) -> list[str]:
    lines = ["### Agreement", ""]
    jh = stats.get("judge_human_agreement", {})
    rows = [
        [which.replace("_", " "), fig.get("n"), fig.get("accuracy"), fig.get("kappa")]
        for which, fig in jh.items()
    ]
    ia = stats.get("inter_annotator", {})
    lines += [
        "Human labels against the judge's suggestion (Cohen's κ over a/b/tie), with the suggestion on screen and "
        "on the pairs where it was withheld to measure priming:",
        "",
        *table(["suggestion", "labels", "accuracy", "κ"], rows),
        "",
        f"Override rate (human decided against a shown suggestion): {cell(stats.get('override_rate'))}. "
        f"Inter-annotator κ: {cell(ia.get('kappa'))} over {ia.get('overlapping_pairs', 0)} overlapping label pairs. "
        f"Human annotators: {len(stats.get('annotators', []))}.",
        "",
    ]
    return lines
