"""Lazily loaded model variants, shared by generation, scoring, eval and the arena, within a byte budget.

Variants that share a base share one loaded copy of it per device, with their LoRA adapters loaded on it as named
PEFT adapters and switched on for each forward (`SharedBase`). A variant whose adapters cannot be switched
exactly (not plain LoRA, see `models.variants.switchable_adapter`) loads as its own merged copy, as does every
variant in `adapters="merge"` mode. Entries are evicted least recently used once their bytes pass `max_bytes`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

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


class SharedBase:
    """One loaded base model with LoRA adapters loaded by name; each variant's view switches its own on."""

    def __init__(self, model, tokenizer, name: str):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.peft = None  # the PeftModel once an adapter is loaded; its inner model is `self.model`
        self.adapter_names: dict[str, str] = {}  # adapter folder -> PEFT adapter name
        self.active: tuple[str, ...] | None = ()
        self.layers: list = []
        self.lock = threading.RLock()

    @classmethod
    def load(cls, variant: Variant, source: str, placement) -> SharedBase:
        from models.devices import device_map_for
        from models.local import load_base

        mapping = device_map_for(placement, source)
        if mapping is None and placement.accelerator:
            mapping = {"": placement.device}  # straight onto the device, without a CPU copy on the way
        model, tokenizer = load_base(variant, source, placement.dtype, device_map=mapping)
        model.eval()
        return cls(model, tokenizer, variant.base)

    def view(self, variant: Variant):
        """A LocalModel of `variant` on this base: its adapters loaded here (once) and switched on per forward."""
        from models.local import LocalModel

        with self.lock:
            names = tuple(self._adapter(path) for path in variant.adapters)
        return LocalModel(
            self.model,
            self.tokenizer,
            name=variant.name,
            variant=variant,
            lock=_SwitchLock(self, names),
            fingerprinter=lambda: self.fingerprint(names),
            copier=lambda: self.plain_copy(names),
        )

    def _adapter(self, path: str) -> str:
        """The PEFT adapter name of an adapter folder, loading it on first use."""
        if path in self.adapter_names:
            return self.adapter_names[path]
        from peft import PeftModel

        from errors import ModelError
        from models.local import _one_line

        name = f"adapter{len(self.adapter_names)}"
        folder = str(Path(path).expanduser())
        try:
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(
                    self.model, folder, adapter_name=name, is_trainable=False
                )
            else:
                self.peft.load_adapter(folder, adapter_name=name, is_trainable=False)
        except Exception as exc:  # shape or target-module mismatches surface as assorted errors
            raise ModelError(_one_line(f"cannot apply adapter {path}: {exc}")) from exc
        from peft.tuners.lora import LoraLayer

        self.layers = [m for m in self.model.modules() if isinstance(m, LoraLayer)]
        self.adapter_names[path] = name
        self.active = None  # new layers start with the new adapter active: switch again on the next forward
        log.info("loaded adapter %s as %s on base %s", path, name, self.name)
        return name

    def activate(self, names: tuple[str, ...]) -> None:
        """Switch the given adapters on (stacked, in order) and every other one off; no-op when already so."""
        if names == self.active:
            return
        for layer in self.layers:
            if names:
                layer.enable_adapters(True)
                layer.set_adapter(list(names), inference_mode=True)
            else:
                layer.enable_adapters(False)
        self.active = names

    def fingerprint(self, names: tuple[str, ...]) -> str:
        """The fingerprint the variant's merged copy has: weights merged tensor by tensor on the CPU."""
        from models.local import fingerprint_tensors

        with self.lock:
            return fingerprint_tensors(_merged_state(self.model, self.layers, names), self.tokenizer)

    def plain_copy(self, names: tuple[str, ...]):
        """A private plain model of the variant: a copy of the base with its adapters merged, others removed."""
        import copy

        with self.lock:
            if self.peft is None:
                return copy.deepcopy(self.model)
            peft = copy.deepcopy(self.peft)
        if names:
            peft.base_model.set_adapter(list(names), inference_mode=True)
            peft.base_model.enable_adapter_layers()
            return peft.merge_and_unload(adapter_names=list(names))
        return peft.unload()


class _SwitchLock:
    """The base's lock; entering it switches the variant's adapters on, so every forward sees its own."""

    def __init__(self, base: SharedBase, names: tuple[str, ...]):
        self.base, self.names = base, names

    def __enter__(self):
        self.base.lock.acquire()
        try:
            self.base.activate(self.names)
        except BaseException:
            self.base.lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.base.lock.release()

    def acquire(self, *args, **kwargs):
        return self.__enter__()

    def release(self) -> None:
        self.base.lock.release()


def _merged_state(model, layers, names: tuple[str, ...]):
    """(key, tensor) in sorted key order of the model with `names` merged in order, as merge_and_unload leaves it."""
    wrapped = {id(layer) for layer in layers}
    lora = {f"{n}.base_layer.": m for n, m in model.named_modules() if id(m) in wrapped}
    items = {}
    for key, tensor in model.state_dict().items():
        if ".lora_" in key:
            continue
        cut = key.rfind(".base_layer.")
        prefix = key[: cut + len(".base_layer.")] if cut >= 0 else None
        if prefix not in lora:
            items[key] = (tensor, None)
            continue
        rest = key[len(prefix) :]
        items[f"{prefix[: -len('base_layer.')]}{rest}"] = (tensor, lora[prefix] if rest == "weight" else None)
    for key in sorted(items):
        tensor, layer = items[key]
        yield key, (tensor if layer is None else _merged_weight(tensor, layer, names))


def _merged_weight(weight, layer, names: tuple[str, ...]):
    """The base weight plus each adapter's delta in order, computed on the CPU exactly as PEFT merges there."""
    import torch
    from peft.utils.other import transpose

    merged = weight.detach().to("cpu").clone()
    for name in names:
        if name not in layer.lora_A:
            continue
        a = layer.lora_A[name].weight.detach().to("cpu")
        b = layer.lora_B[name].weight.detach().to("cpu")
        dtype = b.dtype
        # PEFT's get_delta_weight on the CPU: half-precision factors are multiplied in float32, then cast back.
        cast = dtype in (torch.float16, torch.bfloat16)
        if cast:
            a, b = a.float(), b.float()
        delta = transpose(b @ a, layer.fan_in_fan_out) * layer.scaling[name]
        if cast:
            delta = delta.to(dtype)
        merged += delta
    return merged


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
