"""The one folder the UI serves files from: charts and downloads made for a page, never the home itself.

`launch()` gets `allowed_paths=[served]` and every other entry of the home in `blocked_paths`, so neither
`/gradio_api/file=` nor a handler that returns a wrong path can hand out the database, its WAL, the install
secret, run folders (snapshots, adapters) or exports.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from common.settings import Paths


def blocked_paths(paths: Paths) -> list[str]:
    """Everything in the home except the served folder: the private entries (also while they do not exist yet:
    the WAL comes and goes) plus whatever exists now."""
    found = set(paths.private())
    if paths.home.is_dir():
        found |= {p for p in paths.home.iterdir() if p.name != paths.served.name}
    return sorted(str(p) for p in found)


def charts_dir(paths: Paths) -> Path:
    path = paths.charts
    path.mkdir(parents=True, exist_ok=True)
    return path


def chart_copy(paths: Paths, source: Path, name: str) -> Path:
    """A copy of the chart `source` in the served folder, refreshed when the source changes."""
    target = charts_dir(paths) / name
    src = source.stat()
    if (
        not target.is_file()
        or target.stat().st_mtime_ns != src.st_mtime_ns
        or target.stat().st_size != src.st_size
    ):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        shutil.copyfile(source, tmp)
        os.utime(tmp, ns=(src.st_atime_ns, src.st_mtime_ns))
        os.replace(tmp, target)
    return target
