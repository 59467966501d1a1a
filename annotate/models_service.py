"""Model variants: list them with where they run, register one with local weights and/or an endpoint (admin)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from common.access import Role
from common.errors import UserInputError
from common.flags import Flag, given, setting
from common.serving import Serving
from common.vocab import ModelKind, plain

if TYPE_CHECKING:
    from store.rows import ModelRow

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
MAX_ADAPTERS = 8
MAX_PATH_CHARS = 1024
KINDS = plain(ModelKind.BASE, ModelKind.SFT, ModelKind.DPO)  # what a person may register (not imported)
_NAME = re.compile(r"^[^\s\x00-\x1f\x7f]+$")


@dataclass(frozen=True)
class VariantInfo:
    """A variant as the Models table and the Generate pairs picker show it."""

    name: str
    kind: str
    base: str
    adapters: tuple[str, ...]
    endpoint: str | None
    served_model: str | None
    where: str

    @property
    def on_endpoint(self) -> bool:
        return bool(self.endpoint)


def where_it_runs(ctx, row) -> str:
    """'endpoint URL (model id)' for a served variant; else this server, with its device once loaded."""
    endpoint = getattr(row, "endpoint", None)
    if endpoint:
        served = getattr(row, "served_model", None)
        return f"endpoint {endpoint}" + (f" ({served})" if served else "")
    # The model pool may say where a loaded variant sits ("cuda:0, bf16"); without that, the process it runs in.
    describe = getattr(ctx.generator, "where", None)
    if callable(describe):
        try:
            found = describe(row.name)
        except Exception:  # a description never breaks the table
            found = None
        if found:
            return f"this server: {found}"
    plan = getattr(ctx.generator, "plan", None)  # where the pool will load it ('cuda:0, bf16')
    if callable(plan):
        try:
            planned = plan()
        except Exception:
            planned = None
        if planned:
            return f"this server: {planned} (loaded on first use)"
    return "this server (loaded on first use)"


def list_variants(ctx, *, generating_only: bool = False) -> list[VariantInfo]:
    """Every registered variant, oldest first; `generating_only` drops responses imported from files."""
    out = []
    for row in ctx.store.list_models():
        if generating_only and row.kind == ModelKind.IMPORTED:
            continue
        out.append(
            VariantInfo(
                name=row.name,
                kind=row.kind,
                base=row.base,
                adapters=tuple(row.adapters),
                endpoint=getattr(row, "endpoint", None),
                served_model=getattr(row, "served_model", None),
                where=where_it_runs(ctx, row),
            )
        )
    return out


def variant_listing(ctx) -> list[tuple[ModelRow, str | None]]:
    """`launch.py models list`: each variant's row with the line shown under it, oldest first: where an endpoint
    variant generates, where a local one runs, None for responses imported from files."""
    listing = []
    for row in ctx.store.list_models():
        if getattr(row, "endpoint", None):
            detail = describe_variant(row).split("; ")[-1]
        elif row.kind != ModelKind.IMPORTED:
            detail = f"runs on {where_it_runs(ctx, row)}"  # e.g. this server: cuda:0, bf16
        else:
            detail = None
        listing.append((row, detail))
    return listing


@dataclass(frozen=True)
class VariantSpec:
    """What a person registers: a name, local weights (base + ordered adapters) and/or where a server serves it.

    The `models add` flags and their help come from these fields (and `Serving`'s).
    """

    name: str = setting("", "variant name, e.g. sft")
    base: str | None = setting(None, "Hugging Face model id or local path of the local weights")
    adapters: tuple[str, ...] = setting(help="LoRA adapter folder; repeat to stack, in order", factory=tuple)
    kind: str | None = setting(
        None, "default: sft when adapters are given or only an endpoint, else base", choices=KINDS
    )
    serving: Serving = setting(factory=Serving)


# The `models add` flags (after its NAME): help and choices are VariantSpec's and Serving's fields (common.flags).
VARIANT_FLAGS = (Flag("base"), Flag("adapters", "--adapter", repeat=True), Flag("kind"))
SERVING_FLAGS = (
    Flag("endpoint", metavar="URL"),
    Flag("served_model", metavar="ID"),
    Flag("api_key_env", metavar="VAR"),
    Flag("lora_module", metavar="NAME"),
    Flag("revision"),
)


def variant_spec(args) -> VariantSpec:
    """The VariantSpec that `models add`'s arguments give."""
    values = given(args, VARIANT_FLAGS)
    values["adapters"] = tuple(values.get("adapters", ()))
    return VariantSpec(args.name, **values, serving=Serving(**given(args, SERVING_FLAGS)))


def register_variant(ctx, username: str | None, spec: VariantSpec):
    """Admin only: register `spec.name` as base + adapters, and/or served at an endpoint as a served model.

    With an endpoint and no base, an existing variant without an endpoint (say the demo `sft`) gains one: its
    local weights stay for training and reference scoring, generation goes to the server. Returns the ModelRow.
    """
    from models.variants import check_variant_paths, looks_local

    ctx.access.require(username, Role.ADMIN)
    name = spec.name.strip() if isinstance(spec.name, str) else ""
    if not name:
        raise UserInputError("give the variant a name, e.g. sft")
    if len(name) > MAX_NAME_CHARS:
        raise UserInputError(f"a variant name has at most {MAX_NAME_CHARS} characters, got {len(name)}")
    if not _NAME.match(name):
        raise UserInputError(f"a variant name has no spaces or control characters, got {name!r:.80}")
    base = spec.base.strip() if isinstance(spec.base, str) and spec.base.strip() else None
    serving = (spec.serving or Serving()).stripped()
    adapters = [a.strip() for a in (spec.adapters or ()) if isinstance(a, str) and a.strip()]
    if len(adapters) > MAX_ADAPTERS:
        raise UserInputError(f"at most {MAX_ADAPTERS} adapters, got {len(adapters)}")
    if any(len(p) > MAX_PATH_CHARS for p in (base or "", *adapters)):
        raise UserInputError(f"a path or model id has at most {MAX_PATH_CHARS} characters")
    kind = spec.kind
    if kind is not None and kind not in KINDS:
        raise UserInputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if serving.endpoint is None and serving.extras:
        raise UserInputError(
            "--served-model, --api-key-env, --lora-module and --revision need --endpoint URL"
        )
    if serving.endpoint is not None and serving.served_model is None:
        raise UserInputError("--endpoint needs --served-model ID (the model id the server serves)")
    if adapters and base is None:
        raise UserInputError("--adapter needs --base (the model the adapters apply to)")
    if base is None and serving.endpoint is None:
        raise UserInputError(
            "give --base ID_OR_PATH (local weights), --endpoint URL --served-model ID, or both"
        )

    served = None
    if serving.endpoint is not None:
        # Endpoint checks every field (refusing HF or Anthropic keys) and normalizes the URL before anything is stored.
        served = _endpoint(serving)
        serving = replace(serving, endpoint=served.url)
    store = ctx.store
    existing = store.get_model(name)
    if existing is not None and base is None and served is not None:
        if existing.kind == ModelKind.IMPORTED:
            raise UserInputError(f"{name!r} stands for imported responses; pick another name")
        row = store.set_model_endpoint(name, serving)
        log.info("variant %s now generates through %s (%s)", name, served.url, served.request_model)
        return row
    if existing is not None:
        raise UserInputError(f"a variant named {name!r} already exists: pick another name")

    stored_base, stored_adapters = "", []
    if base is not None:
        check_variant_paths(base, adapters)
        # Absolute paths: the variant must resolve the same from any working directory.
        stored_base = str(Path(base).expanduser().resolve()) if looks_local(base) else base
        stored_adapters = [str(Path(a).expanduser().resolve()) for a in adapters]
    kind = kind or (ModelKind.SFT if stored_adapters or not stored_base else ModelKind.BASE).value
    row = store.add_model(name, stored_base, stored_adapters, kind, serving=serving)
    log.info("registered variant %s (%s)", name, describe_variant(row))
    return row


def endpoint_of(row):
    """The Endpoint a ModelRow generates through, or None for a local-only variant."""
    if row is None or not getattr(row, "endpoint", None):
        return None
    return _endpoint(Serving.of(row))


def _endpoint(serving: Serving):
    """The checked Endpoint for serving fields that name one."""
    from models.endpoint import Endpoint

    return Endpoint(
        serving.endpoint,
        serving.served_model,
        api_key_env=serving.api_key_env,
        revision=serving.revision,
        lora_module=serving.lora_module,
    )


def describe_variant(row) -> str:
    """One line: where the weights are and where it generates (the key's variable name, never the key)."""
    parts = []
    if row.base:
        adapters = f" + {len(row.adapters)} adapter(s)" if row.adapters else ""
        parts.append(f"{row.base}{adapters}")
    if getattr(row, "endpoint", None):
        model = row.served_model + (f"@{row.revision}" if row.revision else "")
        lora = f", LoRA module {row.lora_module}" if row.lora_module else ""
        key = f", key from ${row.api_key_env}" if row.api_key_env else ""
        parts.append(f"generates at {row.endpoint} as {model}{lora}{key}")
    return "; ".join(parts) or "no weights"


def uses_local_device(store, names: Iterable[str]) -> bool:
    """Whether a job over these variants runs a local model (an endpoint-only job skips the device gate)."""
    for name in names:
        row = store.get_model(name)
        if row is None or not getattr(row, "endpoint", None):
            return True
    return False


def device_choices() -> list[str]:
    """What the device picker offers: auto, cpu, each CUDA GPU and mps, as this machine has them."""
    from models.devices import available_devices

    return available_devices()


def set_device(ctx, username: str | None, device: str) -> str:
    """Admin only: run every later model load (generation, scoring, eval, arena) and training run on `device`.

    Refused while a job runs (its model sits on the old device); the loaded models are freed, then load again on
    first use. Returns where models now run ('cuda:1, bf16'). An unavailable device changes nothing.
    """
    from models.devices import check_device

    ctx.access.require(username, Role.ADMIN)
    wanted = check_device(device)
    jobs = ctx.jobs.active() if ctx.jobs is not None else []
    if jobs:
        raise UserInputError(
            f"job #{jobs[0]} is running: the device changes once it ends (or cancel it), so no model moves under it"
        )
    move = getattr(ctx.generator, "move_to", None)
    if not callable(move):
        raise UserInputError("this server's models cannot move to another device")
    plan = move(wanted)  # checks that the device exists before anything changes
    ctx.cfg.device = wanted  # training runs follow it (a run's own --device/YAML device still wins)
    log.info("models now run on %s", plan)
    return plan
