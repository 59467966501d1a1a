"""The demo SFT run: LoRA SFT of a base variant on the gold answers, registered as the `sft` variant.

One job body (`demo_sft_job`) for the Train tab's Demo SFT (`start_demo_sft`, in the background) and
`launch.py sft` (`sft_here`, in the foreground).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from common.errors import UserInputError
from common.vocab import JobKind
from train.sft_config import SFTRunConfig

log = logging.getLogger(__name__)


def run_demo_sft(
    ctx,
    cfg: SFTRunConfig,
    *,
    base: str = "base",
    output_name: str = "sft",
    progress: Callable[[int, int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Train, then register `output_name` = base + the new adapter; the run is recorded in `runs`."""
    from train.sft import run_sft

    store = ctx.store
    base_row, examples = _inputs(store, cfg, base, output_name)
    digest = hashlib.sha256(json.dumps(examples, sort_keys=True).encode()).hexdigest()[:16]
    run = store.create_run(
        "sft",
        {
            **cfg.__dict__,
            "target_modules": list(cfg.target_modules),
            "base": base,
            "output_name": output_name,
        },
        dataset_hash=digest,
        model_id=base_row.id,
        ref_model_id=None,
        status="running",
    )
    out_dir = Path(ctx.cfg.paths.runs) / f"sft-{run.id}"
    try:
        model = ctx.generator.get(base)
        result = run_sft(model, examples, out_dir, cfg, progress=progress, should_stop=should_stop)
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.update_run(run.id, status=status, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise
    summary = {
        "steps": result.steps,
        "train_loss": result.train_loss,
        "seconds": round(result.seconds, 1),
        "examples": result.n_examples,
        "stopped": result.stopped,
    }
    if result.stopped:
        # Cancelled part-way: a half-trained adapter is not the user's `sft`; the run says what happened.
        store.finish_run(run.id, status="cancelled", adapter_path=str(result.adapter_path), result=summary)
        log.info("SFT run %s cancelled after %s step(s); nothing registered", run.id, result.steps)
        return {"run_id": run.id, "variant": None, **summary}
    # Done and registered in one transaction: a kill in between leaves neither.
    store.finish_run(
        run.id,
        status="done",
        adapter_path=str(result.adapter_path),
        result=summary,
        register=(output_name, base_row.base, [*base_row.adapters, str(result.adapter_path)], "sft"),
    )
    log.info("registered %s from SFT run %s", output_name, run.id)
    return {"run_id": run.id, "variant": output_name, **summary}


def _inputs(store, cfg: SFTRunConfig, base: str, output_name: str) -> tuple:
    """The base variant's row and the training examples; UserInputError for what the user must fix first."""
    from train.sft import sft_examples_from_prompts

    base_row = store.get_model(base)
    if base_row is None:
        raise UserInputError(f"no variant named {base!r} to fine-tune (see `launch.py models list`)")
    if store.get_model(output_name) is not None:
        raise UserInputError(
            f"a variant named {output_name!r} already exists; pick another with --output-name"
        )
    examples = sft_examples_from_prompts(store.list_prompts(split="train"))
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    if len(examples) < 2:
        raise UserInputError(
            f"need train prompts with gold answers for SFT, found {len(examples)}: load the demo prompts first"
        )
    return base_row, examples


def demo_sft_job(
    ctx,
    cfg: SFTRunConfig,
    handle,
    *,
    base: str = "base",
    output_name: str = "sft",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The demo SFT as the job `handle` (its progress, its cancel): the one body of the Demo SFT button and
    `launch.py sft`; `progress` also sees each (step, total)."""

    def report(step: int, total: int, _logs: dict) -> None:
        if progress is not None:
            progress(step, total)  # first: the CLI's stop check raises here, before the job row is written
        handle.progress(step, total)

    return run_demo_sft(
        ctx, cfg, base=base, output_name=output_name, progress=report, should_stop=lambda: handle.cancelled
    )


def _job_params(cfg: SFTRunConfig) -> dict:
    return {"sft": True, **cfg.__dict__, "target_modules": list(cfg.target_modules)}


def start_demo_sft(ctx, cfg: SFTRunConfig, *, user: str | None = None) -> int:
    """Start the demo SFT as a background `train` job (admin role, checked before the job row exists)."""
    from common.access import Role

    ctx.access.require(user, Role.ADMIN)
    return ctx.jobs.start(JobKind.TRAIN, _job_params(cfg), lambda handle: demo_sft_job(ctx, cfg, handle))


def sft_here(
    ctx,
    cfg: SFTRunConfig,
    *,
    base: str = "base",
    output_name: str = "sft",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, dict]:
    """`launch.py sft`: the Demo SFT button's job, recorded the same way, run in this process to its end;
    (job id, result). Ctrl-C or SIGTERM (raised from `progress`) leaves the job and its run cancelled."""
    from annotate.jobs import run_job

    # The user's mistakes stop here: one line and no job row (inside the job, run_job would log a second line).
    _inputs(ctx.store, cfg, base, output_name)
    job_id = ctx.store.create_job(JobKind.TRAIN, _job_params(cfg))
    return job_id, run_job(
        ctx.store,
        job_id,
        lambda handle: demo_sft_job(ctx, cfg, handle, base=base, output_name=output_name, progress=progress),
    )
