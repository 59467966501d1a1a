"""The run folder contract between the service and the worker: file names, atomic JSON, metrics lines, cancel."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from common.vocab import MetricSplit

CONFIG = "config.json"
TRAIN = "train.parquet"
VAL = "val.parquet"
METRICS = "metrics.jsonl"
STATUS = "status.json"
CANCEL = "cancel"
ADAPTER = "adapter"
LOG = "worker.log"
REPORT = "report.md"
REFERENCE = "reference.json"  # the worker's reference pass: cached, computed, truncated pairs
CURVES = "curves.png"
TRAINER_DIR = "trainer"
WORKER_STATES = ("starting", "running", "done", "failed", "cancelled")
# Keys of the Trainer's log dicts that are bookkeeping rather than health metrics worth a row per step.
_SKIP = {"total_flos"}


class RunDir:
    """Paths inside one run folder and the few operations both sides need."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def log_path(self) -> Path:
        return self.path / LOG

    @property
    def adapter(self) -> Path:
        return self.path / ADAPTER

    def write_json(self, name: str, data: Any) -> Path:
        """Write JSON atomically (temp file + rename), so a reader never sees half a file."""
        target = self.path / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; run files are ordinary files once renamed
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def read_json(self, name: str) -> Any:
        """The JSON in `name`, or None if it is missing or unreadable."""
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def read_status(self) -> dict[str, Any]:
        """The worker's status.json, or {} before it wrote one."""
        status = self.read_json(STATUS)
        return status if isinstance(status, dict) else {}

    def request_cancel(self) -> None:
        """Ask the worker to stop after its current optimizer step."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / CANCEL).touch()

    def cancel_requested(self) -> bool:
        return (self.path / CANCEL).exists()


class MetricsTail:
    """Reads the complete lines appended to metrics.jsonl since the last call."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        """New records; a line still being written waits for the next call."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        records = []
        for line in data[: end + 1].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line from a killed worker: skip it, keep the rest
            if isinstance(record, dict) and {"step", "split", "name", "value"} <= record.keys():
                records.append(record)
        return records


def metric_records(logs: dict[str, Any], step: int) -> list[dict[str, Any]]:
    """Trainer log dict -> metric rows: `eval_x` goes to split eval as `x`, everything else to train."""
    records = []
    for key, value in logs.items():
        if key in _SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            value = None  # NaN/inf are not JSON; the row still shows that the step logged something
        split, name = (
            (MetricSplit.EVAL.value, key[len("eval_") :])
            if key.startswith("eval_")
            else (MetricSplit.TRAIN.value, key)
        )
        records.append({"step": int(step), "split": split, "name": name, "value": value})
    return records
