"""Lazily loaded model variants, one copy per process, shared by generation, scoring and the arena."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from models.variants import Variant

log = logging.getLogger(__name__)


class ModelPool:
    """Loads variants by name on first use and keeps the most recently used few in memory."""

    def __init__(
        self,
        resolve: Callable[[str], Variant],
        cache_dir: str | Path,
        *,
        loader: Callable[..., object] | None = None,
        max_loaded: int = 3,
        dtype=None,
    ):
        self._resolve = resolve
        self._cache_dir = Path(cache_dir)
        self._loader = loader
        self._max_loaded = max_loaded
        self._dtype = dtype
        self._loaded: OrderedDict[Variant, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str):
        """The loaded model of a variant name (resolved afresh, so a re-registered name reloads)."""
        variant = self._resolve(name)
        with self._lock:
            if variant in self._loaded:
                self._loaded.move_to_end(variant)
                return self._loaded[variant]
            loader = self._loader
            if loader is None:
                from models.local import load_variant as loader
            log.info("loading variant %s", variant.name)
            model = loader(variant, cache_dir=self._cache_dir, dtype=self._dtype)
            self._loaded[variant] = model
            while len(self._loaded) > self._max_loaded:
                evicted, _ = self._loaded.popitem(last=False)
                log.info("unloading variant %s", evicted.name)
            return model

    def put(self, name: str, model) -> None:
        """Register an already loaded model under a variant name (tests, freshly trained adapters)."""
        with self._lock:
            self._loaded[self._resolve(name)] = model
