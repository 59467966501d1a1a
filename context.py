"""Builds the objects a command or the UI needs: the one place real clients are made."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from settings import Paths, resolve_home

log = logging.getLogger(__name__)


@dataclass
class AppConfig:
    """Process-wide settings resolved from flags and the environment."""

    home: Path = field(default_factory=resolve_home, metadata={"help": "PrefLab's home folder"})

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()
        if self.home.exists() and not self.home.is_dir():
            raise ValueError(f"home must be a folder, got the file {self.home}")

    @property
    def paths(self) -> Paths:
        return Paths(self.home)


@dataclass
class Context:
    """What services receive: the store plus injectable external clients."""

    cfg: AppConfig
    store: Any
    judge: Any = None
    generator: Any = None


def register_defaults(store: Any) -> None:
    """Register the default base model as the `base` variant on first run."""
    from models.local import DEFAULT_BASE

    store.ensure_model("base", DEFAULT_BASE, [], "base")


def build_context(cfg: AppConfig, *, store: Any = None, judge: Any = None, generator: Any = None) -> Context:
    """Open the real store (unless one is injected) and register the defaults."""
    if store is None:
        from store import Store

        cfg.paths.ensure()
        store = Store.open(cfg.paths.db)
    register_defaults(store)
    return Context(cfg=cfg, store=store, judge=judge, generator=generator)
