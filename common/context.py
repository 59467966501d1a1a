"""Builds the objects a command or the UI needs: the one place real clients are made."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from common.access import Access
from common.seams import Jobs, Judge, ModelSource
from common.settings import Paths, resolve_home
from common.vocab import ModelKind

if TYPE_CHECKING:
    from models.variants import Variant
    from store import Store

log = logging.getLogger(__name__)


@dataclass
class AppConfig:
    """Process-wide settings resolved from flags and the environment."""

    home: Path = field(default_factory=resolve_home, metadata={"help": "PrefLab's home folder"})
    device: str = field(
        default="auto", metadata={"help": "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps"}
    )
    dtype: str = field(
        default="auto", metadata={"help": "auto: bf16/fp16 on GPUs, the checkpoint's own on the CPU"}
    )
    device_map: str | None = field(default=None, metadata={"help": "auto: spread a model over the devices"})
    model_memory: int | None = field(
        default=None,
        metadata={"help": "Bytes the loaded models may take (default: from the device's memory)"},
    )

    def __post_init__(self) -> None:
        from models.devices import check_device, check_device_map, check_dtype

        self.home = Path(self.home).expanduser().resolve()
        if self.home.exists() and not self.home.is_dir():
            raise ValueError(f"home must be a folder, got the file {self.home}")
        self.device = check_device(self.device)
        self.dtype = check_dtype(self.dtype)
        self.device_map = check_device_map(self.device_map)

    @property
    def paths(self) -> Paths:
        return Paths(self.home)


@dataclass
class Context:
    """What services receive: the store plus injectable external clients."""

    cfg: AppConfig
    store: Store
    judge: Judge | None = None
    generator: ModelSource | None = None  # a ModelPool: variant name -> loaded LocalModel
    jobs: Jobs | None = None  # the JobRunner of this process
    access: Access = field(default_factory=Access)  # roles of the --auth users; none: the local user is admin

    @property
    def secret(self) -> bytes:
        """The per-install secret that keys screen orders: a 0600 file under the home, never in the database."""
        return self.cfg.paths.install_secret()


def register_defaults(store: Store) -> None:
    """Register the default base model as the `base` variant on first run."""
    from models.local import DEFAULT_BASE

    store.ensure_model("base", DEFAULT_BASE, [], ModelKind.BASE)


def variant_resolver(store: Store) -> Callable[[str], Variant]:
    """Variant name -> Variant, read from the `models` table at each call."""
    from common.errors import UserInputError
    from models.local import Variant

    def resolve(name: str) -> Variant:
        row = store.get_model(name)
        if row is None:
            names = ", ".join(m.name for m in store.list_models()) or "none"
            raise UserInputError(f"no variant named {name!r} (registered: {names})")
        if not row.base:
            # Registered with only an endpoint: it generates there, but nothing can load it here.
            raise UserInputError(
                f"{name!r} is served at {row.endpoint} and has no local weights: training and reference "
                "scoring need a variant registered with --base"
            )
        return Variant(row.name, row.base, tuple(row.adapters))

    return resolve


def build_context(
    cfg: AppConfig,
    *,
    store: Store | None = None,
    judge: Judge | None = None,
    generator: ModelSource | None = None,
) -> Context:
    """Open the real store and model pool (unless injected) and register the defaults."""
    from annotate.jobs import JobRunner
    from models.pool import ModelPool

    cfg.paths.ensure()
    if store is None:
        from store import Store

        store = Store.open(cfg.paths.db)
    register_defaults(store)
    stale = store.mark_interrupted()
    if any(stale.values()):
        log.warning("marked %(runs)s run(s) and %(jobs)s job(s) of a stopped process as failed", stale)
    if generator is None:
        generator = ModelPool(
            variant_resolver(store),
            cfg.paths.models,
            device=cfg.device,
            dtype=cfg.dtype,
            device_map=cfg.device_map,
            max_bytes=cfg.model_memory,
        )
    if judge is None:
        from models.judge import make_judge

        # Claude when ANTHROPIC_API_KEY is set, else the rule-based judge (labelled as such in the UI).
        judge = make_judge("auto")
    return Context(cfg=cfg, store=store, judge=judge, generator=generator, jobs=JobRunner(store))
