"""Small helpers shared by the tab modules: empty states and escaping."""

from __future__ import annotations

import html


def empty_state(title: str, steps: list[str]) -> str:
    """Markdown for a tab with nothing to show yet: what to do first, in order."""
    lines = [f"### {html.escape(title)}", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(steps, 1)]
    return "\n".join(lines)


def counts_line(counts: dict[str, int]) -> str:
    """One line summarising what the database holds."""
    keys = ("prompts", "generations", "pairs", "labels", "preference_triples", "runs", "battles")
    return " · ".join(f"{counts.get(k, 0)} {k.replace('_', ' ')}" for k in keys)


def warn(exc: BaseException | str) -> None:
    """A warning toast; Gradio renders toast text as HTML, and messages quote user-chosen names."""
    import gradio as gr

    gr.Warning(html.escape(str(exc)))
