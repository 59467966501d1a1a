"""Background jobs inside the serving process: a thread per job, progress in the `jobs` table."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from errors import PrefLabError

log = logging.getLogger(__name__)


@dataclass
class JobHandle:
    """What a job's body sees: report progress, check for cancellation."""

    job_id: int
    store: object
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int) -> None:
        self.store.update_job(self.job_id, progress=done, total=total)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


def run_job(
    store, job_id: int, body: Callable[[JobHandle], dict], handle: JobHandle | None = None
) -> dict | None:
    """Run a job body to its end, recording status, result and a one-line error; never raises PrefLabError."""
    handle = handle or JobHandle(job_id, store)
    store.update_job(job_id, status="running")
    try:
        result = body(handle)
    except PrefLabError as exc:
        store.update_job(job_id, status="failed", error=str(exc))
        log.warning("job %s failed: %s", job_id, exc)
        raise
    except Exception as exc:
        # The UI shows one line; the log keeps the traceback for whoever debugs it.
        store.update_job(job_id, status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        log.error("job %s crashed:\n%s", job_id, traceback.format_exc())
        raise
    status = "cancelled" if handle.cancelled else "done"
    store.update_job(job_id, status=status, result=result or {})
    return result


class JobRunner:
    """Starts job bodies on daemon threads; at most one active job per kind."""

    def __init__(self, store):
        self.store = store
        self._handles: dict[int, JobHandle] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(
        self, kind: str, params: dict, body: Callable[[JobHandle], dict], *, job_id: int | None = None
    ) -> int:
        """Run `body` in the background as a job of `kind`; returns the job id."""
        with self._lock:
            for jid, thread in self._threads.items():
                job = self.store.get_job(jid)
                if thread.is_alive() and job is not None and job.kind == kind:
                    raise PrefLabError(f"a {kind} job (#{jid}) is already running; wait for it or cancel it")
            if job_id is None:
                job_id = self.store.create_job(kind, params)
            handle = JobHandle(job_id, self.store)
            thread = threading.Thread(
                target=self._run, args=(job_id, body, handle), name=f"job-{job_id}", daemon=True
            )
            self._handles[job_id] = handle
            self._threads[job_id] = thread
            thread.start()
        return job_id

    def _run(self, job_id: int, body, handle: JobHandle) -> None:
        try:
            run_job(self.store, job_id, body, handle)
        except Exception:  # already recorded on the job row by run_job
            pass

    def cancel(self, job_id: int) -> bool:
        """Ask a running job to stop at its next checkpoint."""
        handle = self._handles.get(job_id)
        if handle is None:
            return False
        handle.cancel_event.set()
        return True

    def running(self, job_id: int) -> bool:
        thread = self._threads.get(job_id)
        return bool(thread and thread.is_alive())

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
