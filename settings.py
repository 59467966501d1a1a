"""Where PrefLab keeps its state: the home folder and the paths inside it."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "preflab_home"


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """`--home`, else `$PREFLAB_HOME`, else `./preflab_home/`."""
    chosen = home or os.environ.get("PREFLAB_HOME") or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Paths:
    """The layout of a home folder."""

    home: Path

    @property
    def db(self) -> Path:
        return self.home / "preflab.duckdb"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def runs(self) -> Path:
        return self.home / "runs"

    @property
    def secret(self) -> Path:
        """The per-install secret (mode 0600): never in the database, never served, never exported."""
        return self.home / "install.secret"

    @property
    def served(self) -> Path:
        """The only folder the UI serves files from: charts and downloads made for a page."""
        return self.home / "served"

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


def keyed_seed(secret: bytes, *parts: object) -> int:
    """A 60-bit seed from an HMAC of `parts` under the install secret: recorded, but not predictable."""
    text = ":".join(str(p) for p in parts).encode()
    return int(hmac.new(secret, text, hashlib.sha256).hexdigest()[:15], 16)
