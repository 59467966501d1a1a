"""Model variants from the browser: list them with where they run, register one (admin only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from access import Role
from errors import UserInputError

MAX_NAME_CHARS = 64
MAX_ADAPTERS = 8
MAX_PATH_CHARS = 1024


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
    return "this server (loaded on first use)"


def list_variants(ctx, *, generating_only: bool = False) -> list[VariantInfo]:
    """Every registered variant, oldest first; `generating_only` drops responses imported from files."""
    out = []
    for row in ctx.store.list_models():
        if generating_only and row.kind == "imported":
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


def register_variant(
    ctx,
    username: str | None,
    name: str,
    base: str | None = None,
    adapters=(),
    endpoint: str | None = None,
    served_model: str | None = None,
    api_key_env: str | None = None,
    lora_module: str | None = None,
):
    """Register a variant: a local base plus ordered LoRA adapters (admin role); returns its row.

    Thin first version for the browser's Models form (local weights only). The inference-server work extends it
    with the endpoint fields (URL, served model id, allow-listed API-key variable, LoRA module name).
    """
    ctx.access.require(username, Role.ADMIN)
    name = (name or "").strip()
    if not name:
        raise UserInputError("give the variant a name, e.g. sft")
    if len(name) > MAX_NAME_CHARS:
        raise UserInputError(f"a variant name has at most {MAX_NAME_CHARS} characters, got {len(name)}")
    if any(v for v in (endpoint, served_model, api_key_env, lora_module) if (v or "").strip()):
        raise UserInputError(
            "endpoint variants are not supported by this version yet: register local weights (base and adapters)"
        )
    base = (base or "").strip()
    if not base:
        raise UserInputError("give a base model: a local model folder or a Hugging Face model id")
    adapters = [a.strip() for a in adapters if a and a.strip()]
    if len(adapters) > MAX_ADAPTERS:
        raise UserInputError(f"at most {MAX_ADAPTERS} adapters, got {len(adapters)}")
    if any(len(p) > MAX_PATH_CHARS for p in (base, *adapters)):
        raise UserInputError(f"a path or model id has at most {MAX_PATH_CHARS} characters")
    from models.variants import check_variant_paths, looks_local

    check_variant_paths(base, adapters)
    # Absolute paths, as `models add` stores them: the variant resolves the same from any working directory.
    if looks_local(base):
        base = str(Path(base).expanduser().resolve())
    adapters = [str(Path(a).expanduser().resolve()) for a in adapters]
    if ctx.store.get_model(name) is not None:
        raise UserInputError(f"a variant named {name!r} already exists: pick another name")
    return ctx.store.add_model(name, base, adapters, "sft" if adapters else "base")
