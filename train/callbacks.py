"""Trainer callbacks of the worker: metrics lines, status file, cancellation, periodic KL estimates."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from common.vocab import JobStatus, MetricSplit
from train.rundir import METRICS, STATUS, RunDir, metric_records

log = logging.getLogger(__name__)


class MetricsWriter:
    """Appends metric records to metrics.jsonl, flushed line by line so the service can tail it live."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def make_callbacks(
    run_dir: RunDir, *, tokenizer, kl_prompts: list[list[dict]], kl_every: int, kl_tokens: int, seed: int
):
    """(run-files callback, KL callback or None) for a Trainer writing into `run_dir`."""
    from transformers import TrainerCallback

    writer = MetricsWriter(run_dir / METRICS)

    class RunFilesCallback(TrainerCallback):
        """Every log row to metrics.jsonl, progress to status.json, and the cancel file to should_training_stop."""

        def __init__(self):
            self.cancelled = False
            self.writer = writer
            self.started = time.time()
            self.total = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.total = int(state.max_steps)
            if state.is_world_process_zero:
                self.status(args, state, JobStatus.RUNNING.value)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                writer.write(metric_records(logs, state.global_step))

        def on_step_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.status(args, state, JobStatus.RUNNING.value)
            orphaned = _parent_gone()
            if _agree(run_dir.cancel_requested() or orphaned):
                why = "the PrefLab process that started it exited" if orphaned else "cancel requested"
                log.info("stopping at step %d: %s", state.global_step, why)
                self.cancelled = True
                control.should_training_stop = True
            return control

        def status(self, args, state, phase: str, **extra) -> None:
            run_dir.write_json(
                STATUS,
                {
                    "state": phase,
                    "step": int(state.global_step),
                    "total": self.total,
                    "pid": _pid(),
                    "seconds": round(time.time() - self.started, 3),
                    **extra,
                },
            )

    class KLCallback(TrainerCallback):
        """Every `kl_every` optimizer steps (and at the end), estimate KL(policy || reference) on held-out prompts."""

        def __init__(self):
            self.ref_forwards = 0
            self.last_step = -1
            self.last: dict[str, float] = {}

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % kl_every == 0:
                self.measure(state, model)
            return control

        def on_train_end(self, args, state, control, model=None, **kwargs):
            if state.global_step != self.last_step and state.global_step > 0:
                self.measure(state, model)

        def measure(self, state, model) -> None:
            # One process is enough, and the others do not wait on it: no collective runs in here.
            if not state.is_world_process_zero or model is None:
                return
            from train.kl import estimate_kl

            started = time.perf_counter()
            estimate = estimate_kl(
                model, tokenizer, kl_prompts, max_new_tokens=kl_tokens, seed=seed + 1000 * state.global_step
            )
            self.ref_forwards += estimate.ref_forwards
            self.last_step = state.global_step
            self.last = {"kl": estimate.per_token, "kl_seq": estimate.per_sequence}
            writer.write(
                [
                    {
                        "step": int(state.global_step),
                        "split": MetricSplit.TRAIN.value,
                        "name": "kl",
                        "value": estimate.per_token,
                    },
                    {
                        "step": int(state.global_step),
                        "split": MetricSplit.TRAIN.value,
                        "name": "kl_seq",
                        "value": estimate.per_sequence,
                    },
                ]
            )
            log.info(
                "step %d: KL %.4f nats/token, %.3f nats/sequence (%d tokens, %.1f s)",
                state.global_step,
                estimate.per_token,
                estimate.per_sequence,
                estimate.tokens,
                time.perf_counter() - started,
            )

    kl = KLCallback() if kl_every > 0 and kl_prompts else None
    return RunFilesCallback(), kl


def _agree(flag: bool) -> bool:
    """The main process's flag on every process, so all ranks stop at the same step."""
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes <= 1:
        return flag
    from accelerate.utils import broadcast_object_list

    box = [flag]
    broadcast_object_list(box, from_process=0)
    return bool(box[0])


def _pid() -> int:
    return os.getpid()


def _parent_gone() -> bool:
    """Whether the service that spawned this worker (PREFLAB_PARENT_PID) has exited: nobody would ingest the run."""
    from train.process import PARENT_ENV

    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return False  # started by hand, e.g. `accelerate launch -m train.worker RUN_DIR`
    try:
        os.kill(int(parent), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False
