"""What the Annotate tab and `launch.py generate` call: labelling, suggestions and generation jobs (one body each)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from annotate.generation import GenerateConfig, GenerateResult
from annotate.labelling import LabelConfig, LabelService, Screen, Voted, check_annotator
from annotate.suggestions import Suggester
from common import vocab
from common.access import Role
from common.vocab import ACTIVE_STATUSES, JobKind

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def generate_pairs(ctx, cfg: GenerateConfig, handle, *, progress: Progress | None = None) -> dict:
    """Generate what `cfg` asks for as the job `handle` (its progress, its cancel); the job's result.

    The one body of `launch.py generate` and the Generate pairs button; `progress` also sees each (done, total).
    """
    from annotate import generation  # looked up when called: tests stand a fake run_generation in

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        handle.progress(done, total)

    return generation.run_generation(
        ctx.store, ctx.generator, cfg, progress=report, should_stop=lambda: handle.cancelled
    ).to_dict()


def generate_here(ctx, cfg: GenerateConfig, *, progress: Progress | None = None) -> tuple[int, dict]:
    """`launch.py generate`: the button's job, recorded the same way, run in this process to its end; (id, result).

    Ctrl-C or SIGTERM (raised from `progress`) leaves the job cancelled and what was stored kept.
    """
    from annotate.jobs import run_job

    job_id = ctx.store.create_job(JobKind.GENERATE, cfg.to_dict())
    return job_id, run_job(
        ctx.store, job_id, lambda handle: generate_pairs(ctx, cfg, handle, progress=progress)
    )


@dataclass(frozen=True)
class JobStatus:
    """A job as the UI shows it."""

    job_id: int | None
    status: str
    progress: int
    total: int | None
    text: str

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class AnnotateService:
    """Labelling plus pair generation for one serving process."""

    def __init__(self, ctx, *, label_cfg: LabelConfig | None = None):
        self.ctx = ctx
        self.suggester = Suggester(
            ctx.store,
            ctx.judge,
            base_seed=(label_cfg or LabelConfig()).seed,
            hide_fraction=(label_cfg or LabelConfig()).hide_fraction,
        )
        self.labels = LabelService(ctx.store, self.suggester, label_cfg)

    # -- labelling: the annotator role (any login); the label is stored under the login ----------------

    def identity(self, username: str | None, typed: str | None) -> str:
        """Who labels: the login when the server has users (the textbox is ignored), else the typed name."""
        return check_annotator(self.ctx.access.identity(username, typed))

    def current(self, annotator: str, *, username: str | None = None) -> Screen | None:
        return self.labels.current(self.identity(username, annotator))

    def cast(self, annotator: str, pair_id: int, side: str, *, username: str | None = None, **kw) -> Voted:
        """Store the vote on the pair the page showed; returns its label (for undo) and the next pair."""
        return self.labels.cast(self.identity(username, annotator), pair_id, side, **kw)

    def vote(
        self, annotator: str, pair_id: int, side: str, *, username: str | None = None, **kw
    ) -> Screen | None:
        """`cast`, returning only the next pair."""
        return self.cast(annotator, pair_id, side, username=username, **kw).next

    def undo(self, annotator: str, label_id: int | None, *, username: str | None = None) -> Screen | None:
        """Withdraw the vote the page names (never just the newest one) and show its pair again."""
        return self.labels.undo(self.identity(username, annotator), label_id)

    def refresh(self, annotator: str, pair_id: int, *, username: str | None = None) -> Screen:
        return self.labels.refresh(self.identity(username, annotator), pair_id)

    def counts(self) -> dict[str, int]:
        return self.ctx.store.counts()

    # -- generation -----------------------------------------------------------------------------

    def start_generation(self, cfg: GenerateConfig | None = None, *, username: str | None = None) -> int:
        """Start a generation job in the background (admin role); returns its id."""
        self.ctx.access.require(username, Role.ADMIN)
        return self._start_generation(cfg or GenerateConfig())

    def _start_generation(self, cfg: GenerateConfig, *, job_id: int | None = None) -> int:
        """Start (or resume) a generation job; the caller checked the role."""
        # Fail fast on the request path with the user's mistake, not later inside the job. The messages point to
        # what fixes it in the page: while `serve` runs, it holds the database and no CLI command can.
        from common.errors import UserInputError

        if not self.ctx.store.list_prompts(split=cfg.split, limit=1):
            raise UserInputError(
                f"no {cfg.split} prompts yet: load the demo prompts or import a file in the Data tab"
            )
        get_model = (
            "train the demo SFT in the Train tab (Demo SFT), or register your model in Data → Models (admin)"
        )
        if not cfg.variant:
            raise UserInputError(f"pick the variant that writes the responses; for an SFT model, {get_model}")
        if self.ctx.store.get_model(cfg.variant) is None:
            raise UserInputError(f"no `{cfg.variant}` variant yet: {get_model}")

        def body(handle) -> dict:
            result = generate_pairs(self.ctx, cfg, handle)
            self.suggester.prefetch_unjudged()  # this page's suggestions for the new pairs
            return result

        from annotate.models_service import uses_local_device

        # A variant served by an endpoint runs no local model: it does not wait for the device.
        local = uses_local_device(self.ctx.store, [cfg.variant])
        return self.ctx.jobs.start(JobKind.GENERATE, cfg.to_dict(), body, job_id=job_id, local=local)

    def resume_interrupted(self) -> list[int]:
        """Restart generation jobs a killed process left running; finished cells are not generated again."""
        resumed = []
        for job in self.ctx.store.jobs_with_status(JobKind.GENERATE, ACTIVE_STATUSES):
            try:
                cfg = GenerateConfig(
                    **{k: tuple(v) if isinstance(v, list) else v for k, v in job.params.items()}
                )
                self._start_generation(cfg, job_id=job.id)
                resumed.append(job.id)
                log.info("resumed generation job #%s", job.id)
            except Exception as exc:  # a job that cannot resume is marked, never retried in a loop
                self.ctx.store.update_job(
                    job.id, status=vocab.JobStatus.FAILED, error=f"could not resume: {exc}"
                )
        return resumed

    def generation_status(self) -> JobStatus:
        """The newest generation job, for the progress line under #generate."""
        job = self.ctx.store.latest_job(JobKind.GENERATE)
        if job is None:
            return JobStatus(None, "none", 0, None, "No generation job yet.")
        total = job.total or 0
        if job.status == vocab.JobStatus.QUEUED:
            from annotate.jobs import job_line

            text = job_line(job, self.ctx.jobs)
        elif job.active:
            text = f"Generating: {job.progress}/{total or '?'} responses (job #{job.id})"
            where = getattr(self.ctx.generator, "where", None)
            placed = where((job.params or {}).get("variant", "")) if callable(where) else None
            text += f", {placed}" if placed else ""  # "sft on cuda:0, bf16"
        elif job.status == vocab.JobStatus.DONE:
            text = f"Job #{job.id} done: {GenerateResult.from_dict(job.result or {}).summary()}"
        else:
            text = f"Job #{job.id} {job.status}: {job.error or ''}".strip()
        return JobStatus(job.id, job.status, job.progress, job.total, text)

    def cancel_generation(self, *, username: str | None = None) -> bool:
        """Ask the running generation job to stop after its batch (admin role)."""
        self.ctx.access.require(username, Role.ADMIN)
        job = self.ctx.store.latest_job(JobKind.GENERATE)
        return bool(job and job.active and self.ctx.jobs.cancel(job.id))
