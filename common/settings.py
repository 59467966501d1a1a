"""Where PrefLab keeps its state: the home folder and the paths inside it."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import overload

DEFAULT_HOME = "preflab_home"


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """`--home`, else `$PREFLAB_HOME`, else `./preflab_home/`."""
    chosen = home or os.environ.get("PREFLAB_HOME") or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


class _Under:
    """A read-only attribute of `Paths`: the path `parts` under the home."""

    def __init__(self, *parts: str, doc: str = ""):
        self.parts = parts
        self.__doc__ = doc

    @overload
    def __get__(self, paths: None, owner: type) -> _Under: ...
    @overload
    def __get__(self, paths: Paths, owner: type) -> Path: ...
    def __get__(self, paths: Paths | None, owner: type) -> Path | _Under:
        return self if paths is None else paths.home.joinpath(*self.parts)


@dataclass(frozen=True)
class Paths:
    """The layout of a home folder: every path PrefLab keeps under it is named here and nowhere else."""

    home: Path

    db = _Under("preflab.duckdb")
    db_wal = _Under("preflab.duckdb.wal", doc="DuckDB's write-ahead log, there while the database is open.")
    models = _Under("models", doc="Downloaded and converted model weights.")
    runs = _Under("runs", doc="One folder per training run: snapshot, adapters, checkpoints, logs.")
    exports = _Under("exports", doc="Exported datasets and merged or combined adapters.")
    evals = _Under("evals", doc="Evaluation outputs when no --output-dir is given.")
    secret = _Under(
        "install.secret",
        doc="The per-install secret (mode 0600): never in the database, never served, never exported.",
    )
    served = _Under(
        "served", doc="The only folder the UI serves files from: charts and downloads made for a page."
    )
    downloads = _Under("served", "downloads", doc="Files the Data tab made for a download.")
    charts = _Under("served", "charts", doc="Copies of run charts the pages show.")

    def private(self) -> tuple[Path, ...]:
        """The entries of a home that must never be served, also while they do not exist yet."""
        return (self.db, self.db_wal, self.secret, self.runs, self.models, self.exports, self.evals)

    def install_secret(self) -> bytes:
        """The install's 32-byte secret, created on first use with mode 0600."""
        return install_secret(self.secret)

    def ensure(self) -> Paths:
        for p in (self.home, self.models, self.runs):
            p.mkdir(parents=True, exist_ok=True)
        return self


def install_secret(path: Path) -> bytes:
    """Read the secret at `path`, creating it (32 random bytes, mode 0600, never replaced) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    data = path.read_bytes()
    if len(data) < 32:
        raise ValueError(
            f"the install secret {path} is damaged ({len(data)} bytes); delete it to make a new one"
        )
    return data


def store_secret(store: object) -> bytes:
    """The install secret of the home that holds `store`'s database (a throwaway one for an in-memory store)."""
    path = getattr(store, "path", None)
    if not path or str(path) == ":memory:":
        return secrets.token_bytes(32)
    return Paths(Path(path).parent).install_secret()


def keyed_seed(secret: bytes, *parts: object) -> int:
    """A 60-bit seed from an HMAC of `parts` under the install secret: recorded, but not predictable."""
    text = ":".join(str(p) for p in parts).encode()
    return int(hmac.new(secret, text, hashlib.sha256).hexdigest()[:15], 16)
