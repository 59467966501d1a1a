"""Where PrefLab keeps its state: the home folder and the paths inside it."""

from __future__ import annotations

import os
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

    def ensure(self) -> Paths:
        for p in (self.home, self.models, self.runs):
            p.mkdir(parents=True, exist_ok=True)
        return self
