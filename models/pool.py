"""Lazily loaded model variants, shared by generation, scoring, eval and the arena, within a byte budget.

Variants that share a base share one loaded copy of it per device, with their LoRA adapters loaded on it as named
PEFT adapters and switched on for each forward (`SharedBase`, in models/shared_base.py). A variant whose adapters
cannot be switched exactly (not plain LoRA, see `models.variants.switchable_adapter`) loads as its own merged
copy, as does every variant in `adapters="merge"` mode. Entries are evicted least recently used once their bytes pass `max_bytes`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from models.shared_base import SharedBase
from models.variants import Variant, switchable_adapter

log = logging.getLogger(__name__)

ADAPTER_MODES = ("auto", "switch", "merge")


class ModelPool:
    """Loads variants by name on first use and keeps the most recently used ones within `max_bytes`."""

    def __init__(
        self,
        resolve: Callable[[str], Variant],
        cache_dir: str | Path,
        *,
        loader: Callable[..., object] | None = None,
        max_loaded: int | None = None,
        dtype=None,
        device: str = "cpu",
        device_map: str | None = None,
        max_bytes: int | None = None,
        adapters: str = "auto",
    ):
        from models.devices import check_device, check_device_map, check_dtype

        if adapters not in ADAPTER_MODES:
            raise ValueError(f"adapters must be one of {ADAPTER_MODES}, got {adapters!r}")
        self._resolve = resolve
        self._cache_dir = Path(cache_dir)
        self._loader = loader
        self._max_loaded = max_loaded
        self._dtype = check_dtype(dtype)
        self._device = check_device(device)
        self._device_map = check_device_map(device_map)
        self._max_bytes = max_bytes
        self._explicit_max_bytes = max_bytes
        self._adapters = adapters
        self._placement = None  # resolved on first load: resolving imports torch
        # Entries in least-recently-used order: a Variant -> its own LocalModel, or a base key -> SharedBase.
        self._entries: OrderedDict[object, object] = OrderedDict()
        self._views: dict[Variant, tuple[object, object]] = {}  # variant -> (base key, LocalModel view)
        self._lock = threading.RLock()

    # --- placement --------------------------------------------------------------------------------------

    @property
    def placement(self):
        """The resolved device, dtype and device map every load of this pool uses."""
        if self._placement is None:
            from models.devices import resolve

            self._placement = resolve(self._device, self._dtype, self._device_map)
        return self._placement

    @property
    def max_bytes(self) -> int:
        """The byte budget (default: most of a GPU, half the RAM on the CPU)."""
        if self._max_bytes is None:
            from models.devices import default_max_bytes

            self._max_bytes = default_max_bytes(self.placement.device)
        return self._max_bytes

    def plan(self) -> str:
        """Where models of this pool run before any is loaded: 'cuda:0, bf16'."""
        from models.devices import describe_plan

        return describe_plan(self.placement)

    def where(self, name: str) -> str | None:
        """'sft on cuda:0, bf16' for a loaded variant; None when it is not loaded (or while a load is under way)."""
        # Never waits: status lines poll this, and a load holds the lock for as long as it takes.
        if not self._lock.acquire(blocking=False):
            return None
        try:
            for variant, (_key, view) in self._views.items():
                if variant.name == name:
                    return view.where
            for key, entry in self._entries.items():
                if isinstance(key, Variant) and key.name == name and hasattr(entry, "where"):
                    return entry.where
            return None
        finally:
            self._lock.release()

    # --- loading ------------------------------------------------------------------------------------------

    def get(self, name: str):
        """The loaded model of a variant name (resolved afresh, so a re-registered name reloads)."""
        variant = self._resolve(name)
        with self._lock:
            if variant in self._entries:
                self._entries.move_to_end(variant)
                return self._entries[variant]
            if variant in self._views:
                key, view = self._views[variant]
                self._entries.move_to_end(key)
                return view
            if self._shares_base(variant):
                return self._get_shared(variant)
            loader = self._loader
            if loader is None:
                from models.local import load_variant as loader
            self._make_room(_estimate(variant, self._cache_dir))
            log.info("loading variant %s", variant.name)
            if self._loader is None:
                placement = self.placement
                model = loader(
                    variant,
                    cache_dir=self._cache_dir,
                    dtype=placement.dtype,
                    device=placement.device,
                    device_map=placement.device_map,
                )
            else:
                model = loader(
                    variant, cache_dir=self._cache_dir, dtype=None if self._dtype == "auto" else self._dtype
                )
            self._entries[variant] = model
            self._evict(keep=variant)
            return model

    def put(self, name: str, model) -> None:
        """Register an already loaded model under a variant name (tests, freshly trained adapters)."""
        with self._lock:
            variant = self._resolve(name)
            self._drop_view(variant)
            self._entries[variant] = model

    def _shares_base(self, variant: Variant) -> bool:
        """Whether the variant loads on a shared base with switched adapters (else as its own merged copy)."""
        if self._loader is not None or self._adapters == "merge":
            return False
        if self._adapters == "auto" and not self.placement.accelerator:
            # On the CPU a merged copy decodes fastest (no LoRA matmuls per layer) and RAM is rarely the limit.
            return False
        return all(switchable_adapter(a) for a in variant.adapters)

    def _get_shared(self, variant: Variant):
        from models.local import base_source

        placement = self.placement
        key = ("base", variant.base, placement)
        base = self._entries.get(key)
        if base is None:
            source = base_source(variant, self._cache_dir)
            self._make_room(_estimate(variant, self._cache_dir))
            base = SharedBase.load(variant, source, placement)
            self._entries[key] = base
        else:
            self._entries.move_to_end(key)
        view = base.view(variant)
        self._views[variant] = (key, view)
        self._evict(keep=key)
        return view

    # --- memory -------------------------------------------------------------------------------------------

    def loaded_bytes(self) -> int:
        """Bytes of every loaded entry (shared bases with their adapters counted once)."""
        with self._lock:
            return sum(_entry_bytes(entry) for entry in self._entries.values())

    def loaded(self) -> list[str]:
        """Names of the variants loaded now, least recently used first."""
        with self._lock:
            names = []
            for key in self._entries:
                if isinstance(key, Variant):
                    names.append(key.name)
                names += [v.name for v, (k, _view) in self._views.items() if k == key]
            return names

    def free(self, device: str | None = None) -> int:
        """Unload every model (or those on `device`) and hand their memory back; returns the entries freed."""
        from models.devices import release_memory

        with self._lock:
            keys = [k for k, entry in self._entries.items() if device is None or _on_device(entry, device)]
            for key in keys:
                self._remove(key)
        if keys:
            log.info("freed %d loaded model(s)%s", len(keys), f" from {device}" if device else "")
            release_memory(device)
        return len(keys)

    def move_to(self, device: str) -> str:
        """Run every later load on `device` (checked now: it must exist here); the loaded models are freed first.

        Returns where models will run ('cuda:1, bf16'). An explicit byte budget stays; the default one follows
        the new device.
        """
        from models.devices import check_device, resolve

        wanted = check_device(device)
        placement = resolve(wanted, self._dtype, self._device_map)  # UserInputError when it is not available
        self.free()
        with self._lock:
            self._device, self._placement = wanted, placement
            if self._explicit_max_bytes is None:
                self._max_bytes = None
        return self.plan()

    def release_device(self, device: str | None = None) -> int:
        """Free the models on the device a training worker is about to use (every device when None)."""
        return self.free(device)

    def _make_room(self, incoming: int | None) -> None:
        """Before a load: evict least recently used entries so that `incoming` bytes fit in the budget."""
        if not incoming or not self._entries:
            return
        budget = self.max_bytes
        while self._entries and self.loaded_bytes() + incoming > budget:
            self._remove(next(iter(self._entries)))

    def _evict(self, keep) -> None:
        """After a load: evict least recently used entries (never `keep`) until the budget and count hold."""
        budget = self.max_bytes if self._loader is None or self._max_bytes is not None else None
        while len(self._entries) > 1:
            over_count = self._max_loaded is not None and len(self._entries) > self._max_loaded
            over_bytes = budget is not None and self.loaded_bytes() > budget
            if not (over_count or over_bytes):
                break
            oldest = next(k for k in self._entries if k != keep)
            self._remove(oldest)

    def _remove(self, key) -> None:
        entry = self._entries.pop(key)
        for variant in [v for v, (k, _view) in self._views.items() if k == key]:
            del self._views[variant]
        # Only the pool's references go: a job still holding a view keeps its base (and adapters) working
        # until it ends, and the memory returns then.
        del entry
        log.info("unloading %s", key.name if isinstance(key, Variant) else f"base {key[1]}")

    def _drop_view(self, variant: Variant) -> None:
        self._views.pop(variant, None)


def _estimate(variant: Variant, cache_dir: Path) -> int | None:
    """Bytes a load of the variant's base will take, when its checkpoint is a local folder."""
    from models.devices import checkpoint_bytes
    from models.variants import DEFAULT_BASE, looks_local

    if variant.base == DEFAULT_BASE or not looks_local(variant.base):
        return None
    return checkpoint_bytes(Path(variant.base).expanduser())


def _entry_bytes(entry) -> int:
    from models.devices import model_bytes

    return model_bytes(getattr(entry, "model", None))


def _on_device(entry, device: str) -> bool:
    model = getattr(entry, "model", None)
    found = getattr(model, "device", None)
    if found is None:
        return True
    mapping = getattr(model, "hf_device_map", None)
    if isinstance(mapping, dict) and mapping:
        names = {f"cuda:{v}" if isinstance(v, int) else str(v) for v in mapping.values()}
        return device in names
    return str(found) == device or (device == "cuda" and str(found).startswith("cuda"))
