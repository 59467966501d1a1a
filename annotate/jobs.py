"""Background jobs inside the serving process: a thread per job, progress in the `jobs` table.

Every job has a wall-clock limit per kind, and heavy model jobs (generation, eval and arena responses, SFT, DPO)
take turns on the local device: the next one waits, visibly, until the one using it ends.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import PrefLabError, UserInputError
from common.vocab import JobKind, JobStatus

log = logging.getLogger(__name__)

HOUR = 3600.0
# Generous defaults: the demo's longest job (1120 responses on 2 CPU cores) takes about an hour.
DEFAULT_TIME_LIMITS: dict[str, float] = {
    JobKind.GENERATE: 24 * HOUR,
    JobKind.EVAL: 12 * HOUR,
    JobKind.TRAIN: 48 * HOUR,
    JobKind.JUDGE: 6 * HOUR,
    JobKind.JUDGE_BATCH: 48 * HOUR,
}
# Kinds that run a local model: one at a time per device, or they only slow each other and double the memory.
HEAVY_KINDS = frozenset({JobKind.GENERATE, JobKind.EVAL, JobKind.TRAIN})
LOCAL_DEVICE = "local"


def format_duration(seconds: float) -> str:
    """3600 -> '1 h', 90 -> '90 s'."""
    for unit, size in (("h", HOUR), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


@dataclass
class JobHandle:
    """What a job's body sees: report progress, check for cancellation (a time limit counts as one)."""

    job_id: int
    store: object
    cancel_event: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.monotonic
    deadline: float | None = None
    limit_reason: str = "stopped at its time limit"
    stop_reason: str | None = None  # set when the time limit stopped it

    def progress(self, done: int, total: int) -> None:
        self.store.update_job(self.job_id, progress=done, total=total)

    @property
    def cancelled(self) -> bool:
        if not self.cancel_event.is_set() and self.deadline is not None and self.clock() >= self.deadline:
            self.stop(self.limit_reason)
        return self.cancel_event.is_set()

    def stop(self, reason: str | None = None) -> None:
        """Ask the body to stop at its next checkpoint, recording why (None: a plain cancel)."""
        if not self.cancel_event.is_set():
            self.stop_reason = reason
        self.cancel_event.set()

    @property
    def timed_out(self) -> bool:
        return self.cancel_event.is_set() and self.stop_reason is not None


def run_job(
    store, job_id: int, body: Callable[[JobHandle], dict], handle: JobHandle | None = None
) -> dict | None:
    """Run a job body to its end, recording status, result and a one-line error; never raises PrefLabError."""
    handle = handle or JobHandle(job_id, store)
    store.update_job(job_id, status=JobStatus.RUNNING.value)
    try:
        result = body(handle)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM in a CLI job: what is stored stays; the same command resumes where it can.
        store.update_job(job_id, status=JobStatus.CANCELLED.value, error="interrupted (Ctrl-C or SIGTERM)")
        raise
    except PrefLabError as exc:
        if handle.timed_out:
            store.update_job(job_id, status=JobStatus.CANCELLED.value, error=handle.stop_reason)
        else:
            store.update_job(job_id, status=JobStatus.FAILED.value, error=str(exc))
        log.warning("job %s failed: %s", job_id, exc)
        raise
    except Exception as exc:
        if handle.timed_out:
            store.update_job(job_id, status=JobStatus.CANCELLED.value, error=handle.stop_reason)
        else:
            # The UI shows one line; the log keeps the traceback for whoever debugs it.
            store.update_job(
                job_id, status=JobStatus.FAILED.value, error=f"{type(exc).__name__}: {exc}".splitlines()[0]
            )
        log.error("job %s crashed:\n%s", job_id, traceback.format_exc())
        raise
    if handle.cancelled:
        store.update_job(
            job_id, status=JobStatus.CANCELLED.value, result=result or {}, error=handle.stop_reason
        )
    else:
        store.update_job(job_id, status=JobStatus.DONE.value, result=result or {})
    return result


class DeviceGate:
    """One heavy job at a time per device; the others wait in line and can be cancelled while they wait."""

    def __init__(self):
        self._cond = threading.Condition()
        self._holders: dict[str, int] = {}

    def holder(self, device: str) -> int | None:
        with self._cond:
            return self._holders.get(device)

    def acquire(self, device: str, job_id: int, cancelled: Callable[[], bool], *, poll: float = 0.2) -> bool:
        """Wait for the device; False when the job was cancelled first."""
        with self._cond:
            while device in self._holders:
                if cancelled():
                    return False
                self._cond.wait(poll)
            self._holders[device] = job_id
            return True

    def release(self, device: str, job_id: int) -> None:
        with self._cond:
            if self._holders.get(device) == job_id:
                del self._holders[device]
                self._cond.notify_all()


class JobRunner:
    """Starts job bodies on daemon threads; at most one active job per kind, one heavy job per device."""

    def __init__(
        self,
        store,
        *,
        time_limits: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        device: str = LOCAL_DEVICE,
        gate: DeviceGate | None = None,
    ):
        limits = {**DEFAULT_TIME_LIMITS, **(time_limits or {})}
        for kind, seconds in limits.items():
            if kind not in DEFAULT_TIME_LIMITS:
                raise UserInputError(
                    f"no job kind {kind!r} to limit (kinds: {', '.join(DEFAULT_TIME_LIMITS)})"
                )
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
                raise UserInputError(f"the time limit of {kind} jobs must be a positive number of seconds")
        self.store = store
        self.time_limits = limits
        self.clock = clock
        self.device = device
        self.gate = gate or DeviceGate()
        self._handles: dict[int, JobHandle] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._waiting: dict[int, str] = {}  # job id -> device it waits for
        self._lock = threading.Lock()

    def start(
        self,
        kind: str,
        params: dict,
        body: Callable[[JobHandle], dict],
        *,
        job_id: int | None = None,
        local: bool = True,
    ) -> int:
        """Run `body` in the background as a job of `kind`; returns the job id.

        `local=False`: the job runs no local model (its variants are served elsewhere), so it skips the gate.
        """
        with self._lock:
            for jid, thread in self._threads.items():
                job = self.store.get_job(jid)
                if thread.is_alive() and job is not None and job.kind == kind:
                    raise PrefLabError(f"a {kind} job (#{jid}) is already running; wait for it or cancel it")
            if job_id is None:
                job_id = self.store.create_job(kind, params)
            handle = JobHandle(job_id, self.store, clock=self.clock)
            heavy = kind in HEAVY_KINDS and local
            thread = threading.Thread(
                target=self._run, args=(job_id, kind, body, handle, heavy), name=f"job-{job_id}", daemon=True
            )
            self._handles[job_id] = handle
            self._threads[job_id] = thread
            if heavy:
                self._waiting[job_id] = self.device
            thread.start()
        return job_id

    def _run(self, job_id: int, kind: str, body, handle: JobHandle, heavy: bool) -> None:
        try:
            if heavy:
                if self.gate.holder(self.device) is not None:
                    self.store.update_job(job_id, status=JobStatus.QUEUED.value)
                if not self.gate.acquire(self.device, job_id, lambda: handle.cancel_event.is_set()):
                    self.store.update_job(
                        job_id,
                        status=JobStatus.CANCELLED.value,
                        error="cancelled while waiting for the device",
                    )
                    return
            with self._lock:
                self._waiting.pop(job_id, None)
            limit = self.time_limits[kind]
            handle.deadline = self.clock() + limit
            handle.limit_reason = f"stopped at the {format_duration(limit)} time limit of {kind} jobs"
            run_job(self.store, job_id, body, handle)
        except Exception:  # already recorded on the job row by run_job
            pass
        finally:
            with self._lock:
                self._waiting.pop(job_id, None)
            if heavy:
                self.gate.release(self.device, job_id)

    def cancel(self, job_id: int) -> bool:
        """Ask a running (or waiting) job to stop at its next checkpoint."""
        handle = self._handles.get(job_id)
        if handle is None or not self.running(job_id):
            return False
        handle.stop()
        return True

    def cancel_latest(self, kind: str, *, where: Callable[[object], bool] | None = None) -> int | None:
        """Cancel the newest active job of `kind` this runner started (matching `where`); its id, or None."""
        for job_id in sorted(self._handles, reverse=True):
            job = self.store.get_job(job_id)
            if job is None or job.kind != kind or not self.running(job_id):
                continue
            if where is not None and not where(job):
                continue
            return job_id if self.cancel(job_id) else None
        return None

    def active(self) -> list[int]:
        """The jobs of this process still running or waiting for the device, oldest first."""
        with self._lock:
            return sorted(job_id for job_id, thread in self._threads.items() if thread.is_alive())

    def running(self, job_id: int) -> bool:
        thread = self._threads.get(job_id)
        return bool(thread and thread.is_alive())

    def waiting_for(self, job_id: int) -> int | None:
        """The job holding the device this job waits for; None when it is not waiting."""
        with self._lock:
            device = self._waiting.get(job_id)
        if device is None:
            return None
        holder = self.gate.holder(device)
        return holder if holder != job_id else None

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)


def job_line(job, runner: JobRunner | None = None) -> str | None:
    """'Job #N waiting for the device (job #M is using it)' for a job that waits its turn; None otherwise."""
    if job is None or job.status != JobStatus.QUEUED:
        return None
    holder = runner.waiting_for(job.id) if runner is not None else None
    using = f" (job #{holder} is using it)" if holder is not None else ""
    return f"Job #{job.id} waiting for the device{using}"


def cancel_job(
    ctx, username: str | None, kind: str, *, where: Callable[[object], bool] | None = None
) -> int | None:
    """Admin only: cancel the newest active job of `kind` (matching `where`), waiting or running; its id or None."""
    from common.access import Role

    ctx.access.require(username, Role.ADMIN)
    return ctx.jobs.cancel_latest(kind, where=where)
