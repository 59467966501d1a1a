"""Small helpers shared by the tab modules: empty states, escaping, name and whole-number fields, cancel buttons."""

from __future__ import annotations

import html
from collections.abc import Callable

from common.errors import PrefLabError


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


# The longest name check_annotator (annotate/labelling.py) accepts: the box stops a longer one as it is typed.
MAX_NAME_CHARS = 64


def name_field(value: str, elem_id: str, **kwargs):
    """The "Your name" box of a page people vote in (Annotate, Arena); kwargs go to gr.Textbox."""
    import gradio as gr

    return gr.Textbox(
        value=value, label="Your name", elem_id=elem_id, max_length=MAX_NAME_CHARS, scale=1, **kwargs
    )


def int_field(label: str, elem_id: str, value: int | None = None, *, minimum=None, maximum=None, **kwargs):
    """A whole-number form field (gr.Number with precision 0) between its bounds; kwargs go to gr.Number."""
    import gradio as gr

    return gr.Number(
        value=value, precision=0, minimum=minimum, maximum=maximum, label=label, elem_id=elem_id, **kwargs
    )


def cancel_line(
    ctx, request, kind: str, what: str, *, where: Callable[[object], bool] | None = None
) -> str | None:
    """Cancel the newest active `kind` job (admin only) and say what happened; None, after a toast, if refused.

    `what` names the job in the line ('SFT', 'eval'); `where` picks among the jobs of that kind.
    """
    from annotate.jobs import cancel_job

    try:
        job = cancel_job(ctx, getattr(request, "username", None), kind, where=where)
    except PrefLabError as exc:
        warn(exc)
        return None
    return f"Cancelling {what} job #{job} after its current step." if job else f"No {what} is running."
