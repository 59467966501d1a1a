"""One loaded base model shared by the variants built on it: their LoRA adapters loaded by name and switched on
for each forward, so N variants of a base cost one copy of its weights. `models.pool.ModelPool` decides when a
variant uses one (`SharedBase.view`) and when it loads as its own merged copy.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from common.text import one_line
from models.variants import Variant

log = logging.getLogger(__name__)


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

        from common.errors import ModelError

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
            raise ModelError(one_line(f"cannot apply adapter {path}: {exc}")) from exc
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
