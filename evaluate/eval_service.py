"""The automatic N-way eval: generate per variant, score every output, store the run, reload it by id.

What the Eval tab reads (run choices, sample viewer, job line) is in evaluate/eval_reads.py, re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from common.access import Role
from common.errors import PrefLabError, UserInputError
from common.limits import MAX_ITEMS
from common.vocab import PROMPT_SETS, JobKind, ModelKind, Split
from evaluate.eval_reads import eval_choices, eval_job_status, sample, sample_choices, withheld_variants
from evaluate.eval_report import (
    EvalResult,
    agreement_note,
    arena_note,
    circularity_note,
    summarise,
)
from evaluate.responses import ResponseParams, ensure_responses
from evaluate.scorers import Item, default_scorers, judge_name

log = logging.getLogger(__name__)

DPO_PREFIX = "sft+dpo"
JUDGE_KINDS = ("auto", "rule", "anthropic")

__all__ = [
    "EvalCancelled",
    "EvalRequest",
    "EvalResult",
    "default_variants",
    "eval_choices",
    "eval_job_status",
    "load_eval",
    "run_eval",
    "sample",
    "sample_choices",
    "start_eval_job",
    "withheld_variants",
]


class EvalCancelled(PrefLabError):
    """The eval was stopped before it finished; nothing was stored (generated responses stay cached)."""


@dataclass
class EvalRequest:
    """What the Eval tab (or a job) asks for; the CLI passes the same values to run_eval."""

    variants: tuple[str, ...] = field(
        default=(), metadata={"help": "variant names; empty = base, sft, newest sft+dpo"}
    )
    prompt_set: str = field(default=Split.HELDOUT.value, metadata={"help": "heldout or train"})
    limit: int | None = field(default=30, metadata={"help": "prompts to evaluate (first N of the set)"})
    judge: str = field(default="auto", metadata={"help": "auto, rule or anthropic"})
    params: ResponseParams = field(default_factory=ResponseParams, metadata={"help": "sampling"})

    def __post_init__(self):
        self.variants = tuple(v.strip() for v in self.variants if v and v.strip())
        if self.prompt_set not in PROMPT_SETS:
            raise UserInputError(
                f"prompt set must be one of {', '.join(PROMPT_SETS)}; got {self.prompt_set!r}"
            )
        if self.limit is not None and self.limit < 1:
            raise UserInputError(f"limit must be at least 1; got {self.limit!r}")
        if self.limit is not None and self.limit > MAX_ITEMS:
            raise UserInputError(f"limit must be at most {MAX_ITEMS}; got {self.limit!r}")
        if self.judge not in JUDGE_KINDS:
            raise UserInputError(f"judge must be one of {', '.join(JUDGE_KINDS)}; got {self.judge!r}")

    def to_dict(self) -> dict:
        """JSON-ready, for the job row."""
        return {**asdict(self), "variants": list(self.variants)}


# ---- variants, prompts, judge ---------------------------------------------------------------------


def _dpo_rows(store) -> list:
    return [m for m in store.list_models() if m.name == DPO_PREFIX or m.name.startswith(DPO_PREFIX + "@")]


def default_variants(store) -> list[str]:
    """base, sft and the newest sft+dpo@* (by model id), those that exist."""
    names = [n for n in ("base", "sft") if store.get_model(n) is not None]
    dpo = _dpo_rows(store)
    return names + ([dpo[-1].name] if dpo else [])


def resolve_variants(store, variants) -> list[str]:
    """Checked variant names in display order; bare 'sft+dpo' means the newest sft+dpo@* variant."""
    chosen = [v.strip() for v in (variants or []) if v and v.strip()] or default_variants(store)
    out = []
    for name in chosen:
        if store.get_model(name) is None:
            dpo = _dpo_rows(store)
            if name == DPO_PREFIX and dpo:
                name = dpo[-1].name
            else:
                known = ", ".join(m.name for m in store.list_models()) or "none"
                raise UserInputError(f"no variant named {name!r} to evaluate (registered: {known})")
        if name in out:
            raise UserInputError(f"variant {name!r} is listed twice")
        out.append(name)
    if len(out) < 2:
        raise UserInputError(
            f"the eval needs at least two variants, found {', '.join(out) or 'none'}: get an `sft` variant (in the "
            "browser: Train → Demo SFT, or Data → Models; with no server running: `launch.py sft` or "
            "`launch.py models add`) and train a DPO adapter, or name the variants"
        )
    return out


def reference_variant(variants: list[str]) -> str:
    """What the Δ column and the preference row compare against: `sft` when evaluated (and not last), else the first."""
    return "sft" if "sft" in variants[:-1] else variants[0]


def pick_judge(ctx, kind: str = "auto"):
    """The eval's judge: the context's for 'auto' (or when it is of the asked kind), else a new one."""
    from models.judge import make_judge

    if kind == "auto":
        return ctx.judge if ctx.judge is not None else make_judge("auto")
    if ctx.judge is not None and getattr(ctx.judge, "name", None) == kind:
        return ctx.judge
    return make_judge(kind)


def judge_annotator(judge) -> str:
    """The annotator name judge-sourced labels carry (annotate/judging.accept_consistent): judge:<name>[:<model>]."""
    model = getattr(judge, "model", None)
    return f"judge:{judge.name}" + (f":{model}" if model else "")


def circularity(store, judge, variants: list[str]) -> dict | None:
    """Whether the eval judge's own labels may have trained an evaluated DPO adapter.

    Rule: a variant of kind 'dpo' (or named sft+dpo...) counts as possibly trained on this judge's labels
    when live labels with source 'judge' by the same judge and model (annotator judge:<name>[:<model>])
    were created before the variant was registered; labels made later cannot have trained it.
    """
    annotator = judge_annotator(judge)
    hits, most = [], 0
    for name in variants:
        row = store.get_model(name)
        if row is None or not (row.kind == ModelKind.DPO or name.startswith(DPO_PREFIX)):
            continue
        n = store.eval_judge_label_count(annotator, before=row.created_at)
        if n:
            hits.append(name)
            most = max(most, n)
    if not hits:
        return None
    return {"annotator": annotator, "judge_label": judge_name(judge), "labels": most, "variants": hits}


# ---- the eval ---------------------------------------------------------------------------------------


def run_eval(
    ctx,
    variants: list[str] | None = None,
    *,
    prompt_set: str = Split.HELDOUT.value,
    limit: int | None = 30,
    params: ResponseParams | None = None,
    judge=None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EvalResult:
    """Generate (cached) responses per variant, score them, store eval_runs + eval_scores, return the table."""
    store = ctx.store
    params = params or ResponseParams()
    should_stop = should_stop or (lambda: False)
    request = EvalRequest(tuple(variants or ()), prompt_set, limit)  # validates the arguments
    names = resolve_variants(store, request.variants)
    prompts = store.list_prompts(split=prompt_set, limit=limit)
    if not prompts:
        raise UserInputError(
            f"no {prompt_set} prompts to evaluate: import prompts first in the Data tab (with no server running: "
            "`launch.py import`)"
        )
    judge = judge if judge is not None else pick_judge(ctx)
    reference = reference_variant(names)
    scorers = default_scorers(judge, reference)
    total = len(names) * len(prompts) + len(prompts)
    log.info(
        "eval of %s on %d %s prompts (judge: %s)",
        ", ".join(names),
        len(prompts),
        prompt_set,
        judge_name(judge),
    )

    gen_ids: dict[str, dict[int, int]] = {}
    for i, name in enumerate(names):
        if should_stop():
            raise EvalCancelled("eval cancelled while generating; nothing stored")
        offset = i * len(prompts)

        def step(done: int, _total: int, offset: int = offset) -> None:
            if progress:
                progress(offset + done, total)

        gen_ids[name] = ensure_responses(
            store, ctx.generator, name, prompts, params, progress=step, should_stop=should_stop
        )
        if len(gen_ids[name]) < len(prompts):
            raise EvalCancelled("eval cancelled while generating; nothing stored")
    texts = store.generation_texts([g for ids in gen_ids.values() for g in ids.values()])

    model_ids = {name: store.get_model(name).id for name in names}
    rows: list[tuple[int, int, str, float | None]] = []
    done = len(names) * len(prompts)
    for prompt in prompts:
        if should_stop():
            raise EvalCancelled("eval cancelled while scoring; nothing stored")
        item = Item(prompt.id, prompt.messages, prompt.gold, {n: texts[gen_ids[n][prompt.id]] for n in names})
        for scorer in scorers:
            for name, value in scorer.score(item, reference).items():
                rows.append((prompt.id, model_ids[name], scorer.name, value))
        done += 1
        if progress:
            progress(done, total)

    config = {
        "params": asdict(params),
        "cell": params.cell(),
        "limit": limit,
        "n_prompts": len(prompts),
        "reference": reference,
        "judge": judge.name,
        "judge_model": getattr(judge, "model", None),
        "judge_label": judge_name(judge),
        "scorers": [s.describe() for s in scorers],
        "failures": {s.name: s.failures for s in scorers if s.failures},
        "model_ids": model_ids,
        "circularity": circularity(store, judge, names),
    }
    eval_run_id = store.add_eval_run(names, prompt_set, config, rows)
    log.info("stored eval run #%d: %d scores", eval_run_id, len(rows))
    return load_eval(store, eval_run_id)


def load_eval(store, eval_run_id: int) -> EvalResult:
    """An eval run rebuilt from DuckDB: the same table as when it ran, with today's arena and agreement notes."""
    row = store.get_eval_run(eval_run_id)
    if row is None:
        raise UserInputError(f"no eval run #{eval_run_id}")
    scores = store.eval_scores_frame(eval_run_id)[["prompt_id", "variant", "scorer", "value"]]
    cfg = row.config
    reference = cfg.get("reference") or reference_variant(row.variants)
    scorers = cfg.get("scorers") or [{"name": s, "kind": "?"} for s in dict.fromkeys(scores["scorer"])]
    circular = cfg.get("circularity")
    table, stats, left_out = summarise(scores, row.variants, reference, scorers, circular=bool(circular))
    notes = [n for n in [circularity_note(circular)] if n]
    notes.append(arena_note(store, row.variants[-1], reference))
    notes.append(agreement_note(store))
    for name, n in (cfg.get("failures") or {}).items():
        notes.append(
            f"{name}: the judge failed on {n} output(s); those cells average fewer prompts (n shown)"
        )
    notes.extend(left_out)
    return EvalResult(
        eval_run_id=row.id,
        variants=row.variants,
        reference=reference,
        prompt_set=row.prompt_set,
        config=cfg,
        created_at=row.created_at,
        scores=scores.reset_index(drop=True),
        table=table,
        stats=stats,
        notes=notes,
    )


# ---- background job ---------------------------------------------------------------------------------


def start_eval_job(ctx, request: EvalRequest | None = None, *, username: str | None = None) -> int:
    """Start an eval as a background job (kind 'eval'); its result names the eval_run_id. Returns the job id.

    Needs the admin role (`username` is the login; None without `--auth`, where the local user is admin).
    """
    ctx.access.require(username, Role.ADMIN)
    request = request or EvalRequest()
    # Fail fast on the request path with the user's mistake, not later inside the job.
    names = resolve_variants(ctx.store, request.variants)
    if not ctx.store.list_prompts(split=request.prompt_set, limit=1):
        raise UserInputError(f"no {request.prompt_set} prompts to evaluate: import prompts first (Data tab)")
    judge = pick_judge(ctx, request.judge)

    def body(handle) -> dict:
        try:
            result = run_eval(
                ctx,
                list(request.variants),
                prompt_set=request.prompt_set,
                limit=request.limit,
                params=request.params,
                judge=judge,
                progress=handle.progress,
                should_stop=lambda: handle.cancelled,
            )
        except EvalCancelled:
            return {"cancelled": True}
        return {"eval_run_id": result.eval_run_id}

    from annotate.models_service import uses_local_device

    # Only served variants: no local model runs, so the job does not wait for the device.
    return ctx.jobs.start(JobKind.EVAL, request.to_dict(), body, local=uses_local_device(ctx.store, names))
