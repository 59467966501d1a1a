"""What the Eval tab reads: the eval runs to pick from, one prompt's outputs side by side, the job's progress line.

Read-only, from DuckDB; `evaluate.eval_service` runs and stores the evals (and re-exports these names).
"""

from __future__ import annotations

import pandas as pd

from common.errors import UserInputError
from common.vocab import JobKind, JobStatus
from evaluate.scorers import gold_answer


def eval_choices(store, limit: int = 50) -> list[tuple[str, int]]:
    """(label, eval_run_id) of recent eval runs, newest first, for a dropdown."""
    out = []
    for r in store.list_eval_runs(limit):
        when = r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else "?"
        n = r.config.get("n_prompts", "?")
        out.append((f"#{r.id} · {when} · {', '.join(r.variants)} · {n} {r.prompt_set} prompts", r.id))
    return out


def _short(text: str, limit: int = 80) -> str:
    # Demo prompts share their first line (the instruction); the report after it tells them apart.
    body = text.split("\n\n", 1)[-1]
    flat = " ".join(body.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def sample_choices(store, eval_run_id: int) -> list[tuple[str, int]]:
    """(label, prompt_id) of the prompts an eval scored, for the sample viewer's dropdown."""
    from models.judge import render_prompt

    ids = store.eval_scores_frame(eval_run_id)["prompt_id"].unique()
    out = []
    for pid in sorted(int(p) for p in ids):
        prompt = store.get_prompt(pid)
        out.append((f"#{pid} {_short(render_prompt(prompt.messages))}", pid))
    return out


def withheld_variants(store, variants: list[str], split: str) -> dict[str, str]:
    """Variant -> why its responses on `split` prompts are hidden: an open arena may still serve them blind."""
    out: dict[str, str] = {}
    for arena in store.open_arenas():
        if arena.prompt_set != split:
            continue
        for name in variants:
            if name in arena.names and name not in out:
                a, b = arena.names
                out[name] = (
                    f"withheld while the arena {a} vs {b} ({split} prompts) is open: it shows these very "
                    "responses blind; an admin closes it in the Arena tab"
                )
    return out


def sample(store, eval_run_id: int, prompt_id: int) -> dict:
    """One prompt of an eval side by side: prompt, gold, every variant's output and its scores.

    A variant in an open arena on this prompt's set is withheld (output and per-prompt scores): the arena
    and the eval share generation cells, so its text here would name the arena's blind responses.
    """
    from models.judge import render_prompt

    row = store.get_eval_run(eval_run_id)
    if row is None:
        raise UserInputError(f"no eval run #{eval_run_id}")
    prompt = store.get_prompt(prompt_id)
    scores = store.eval_scores_frame(eval_run_id)
    mine = scores[scores["prompt_id"] == prompt_id]
    if prompt is None or mine.empty:
        raise UserInputError(f"eval run #{eval_run_id} did not score prompt #{prompt_id}")
    cell = row.config.get("cell")
    withheld = withheld_variants(store, row.variants, prompt.split)
    gen_ids = {}
    for name in row.variants:
        if name in withheld:
            gen_ids[name] = None
            continue
        model_id = (row.config.get("model_ids") or {}).get(name) or store.get_model(name).id
        gen_ids[name] = store.done_cells(model_id, [prompt_id]).get((prompt_id, cell))
    texts = store.generation_texts([g for g in gen_ids.values() if g is not None])
    return {
        "prompt_id": prompt_id,
        "prompt": render_prompt(prompt.messages),
        "messages": prompt.messages,
        "gold": gold_answer(prompt.gold),
        "outputs": {name: texts.get(g, "") if g is not None else "" for name, g in gen_ids.items()},
        "scores": {
            name: {
                s: (None if pd.isna(v) else float(v)) for s, v in zip(g["scorer"], g["value"], strict=True)
            }
            for name, g in mine.groupby("variant", sort=False)
            if name not in withheld
        },
        "withheld": withheld,
    }


def eval_job_status(store) -> dict:
    """The newest eval job for the tab's progress line: job_id, status, eval_run_id and a sentence."""
    job = store.latest_job(JobKind.EVAL)
    if job is None:
        return {"job_id": None, "status": "none", "eval_run_id": None, "text": "No eval job yet."}
    run_id = (job.result or {}).get("eval_run_id")
    if job.status == JobStatus.QUEUED:
        from annotate.jobs import job_line

        text = job_line(job)
    elif job.active:
        text = f"Evaluating: {job.progress}/{job.total or '?'} steps (job #{job.id})"
    elif job.status == JobStatus.DONE and run_id is not None:
        text = f"Job #{job.id} done: eval run #{run_id}"
    else:
        text = f"Job #{job.id} {job.status}: {job.error or ''}".strip().rstrip(":")
    return {"job_id": job.id, "status": job.status, "eval_run_id": run_id, "text": text}
