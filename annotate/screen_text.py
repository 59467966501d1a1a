"""What the Annotate page says, as text: the empty state, the variant note, the prompt, the judge's suggestion and
the progress line. Plain functions of the service's data (no widgets), so annotate/ui.py only lays out and wires.
"""

from __future__ import annotations

import html

from annotate.labelling import Screen
from annotate.models_service import VariantInfo
from common.safe_text import md_text
from common.vocab import Decision, ModelKind, Side
from webui.common import counts_line, empty_state


def annotate_empty_state(counts: dict[str, int], has_sft: bool = False) -> str:
    """What the Annotate tab tells a user who has nothing to label yet; every step is done in this page."""
    steps = []
    if counts.get("prompts", 0) == 0:
        steps.append(
            "Import prompts: **Data** tab → *Load the demo prompts*, or upload your file there "
            "(JSONL, CSV, Parquet)."
        )
    if counts.get("pairs", 0) == 0:
        if not has_sft:
            steps.append(
                "Get an SFT model: **Train** tab → *Demo SFT*, or register yours in **Data** → *Models* (admin)."
            )
        steps.append("Generate two responses per prompt: pick the variant below, then **Generate pairs**.")
    else:
        steps.append("Every pair has a label: generate more below, or train on them in **Train**.")
    steps.append("Label them here. Keys: `1` A, `2` B, `3` tie, `4` both bad, `s` skip, `u` undo.")
    title = "Nothing to label yet" if counts.get("pairs", 0) == 0 else "All pairs are labelled"
    return empty_state(title, steps) + f"\n\n<small>{counts_line(counts)}</small>"


GET_SFT = "**Train** tab → *Demo SFT* (registered as `sft`), or register yours in **Data** → *Models* (admin)"


def variant_note(info: VariantInfo | None) -> str:
    """What the Generate pairs picker says about the chosen variant: where it runs, and what a baseline is for."""
    if info is None:
        return (
            f"Pick the variant that writes the responses. Your SFT model: {GET_SFT}; `base` gives a baseline."
        )
    name = f"**{md_text(info.name)}**"
    if info.on_endpoint:
        return f"{name} generates on its server ({md_text(info.where)}), not in this process."
    if info.kind == ModelKind.BASE and info.name != "sft":
        return (
            f"{name} is a base model: its responses are for a baseline. Pairs for DPO on top of your SFT model "
            f"come from `sft`: {GET_SFT}."
        )
    return f"{name} generates in {md_text(info.where)}."


def render_prompt(messages: list[dict]) -> str:
    """A chat prompt as plain text (the Textbox shows it escaped)."""
    if len(messages) == 1:
        return str(messages[0].get("content", ""))
    return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in messages)


def shown_suggestion(screen: Screen | None, hide: bool) -> str | None:
    """The suggestion the page displays, in screen terms ('A', 'B', 'tie'); None when it shows none.

    The page keeps this and sends it with the vote, so a verdict that lands after the page was drawn (a retry
    that succeeded, a pending judge) is never recorded as one the person saw.
    """
    if screen is None or hide or screen.suggestion_hidden or screen.verdict is None:
        return None
    if screen.verdict.status == "abstained":
        return None
    return screen.suggestion_side


def suggestion_html(screen: Screen, hide: bool) -> tuple[str, str]:
    """(headline HTML, rationale text); everything from a model or a file is escaped."""
    if screen.verdict is not None and screen.verdict.status == "abstained":
        # Nothing to show or hide: say so, and how to get a judge that applies, instead of a suggestion.
        return (
            f"<div class='judge-none'>No judge applies to this pair: {html.escape(screen.verdict.error or '')} "
            "To get suggestions on any data, set <code>ANTHROPIC_API_KEY</code> and restart PrefLab.</div>",
            "",
        )
    if hide or screen.suggestion_hidden:
        why = "you chose to hide it" if hide else "withheld for this pair to measure unprimed agreement"
        return f"<div class='judge-hidden'>Judge suggestion hidden ({html.escape(why)}).</div>", ""
    if screen.verdict is None:
        return f"<div class='judge-pending'>{html.escape(screen.judge_label)} is judging this pair…</div>", ""
    headline, rationale = screen.verdict.display()
    side = screen.suggestion_side
    if side in (Side.A, Side.B):
        # display() speaks of the screen's A/B already: the judge was asked in screen order.
        cls = "judge-ok"
    elif side == Decision.TIE:
        cls = "judge-ok"
    else:
        cls = "judge-unsure" if screen.verdict.status == "unsure" else "judge-failed"
    return f"<div class='{cls}'>{html.escape(headline)}</div>", rationale


def progress_text(screen: Screen | None, counts: dict[str, int], annotator: str) -> str:
    if screen is None:
        return f"**{md_text(annotator)}** · {counts.get('pairs', 0)} pairs in the queue"
    return (
        f"**{md_text(annotator)}**: {screen.mine} labelled · team: {screen.labelled_pairs}/{screen.total} "
        f"pairs labelled · pair #{screen.pair_id}"
    )
