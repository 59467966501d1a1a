"""TRL's DPOTrainer fed with PrefLab's cached reference log-probs: no reference forward during training.

TRL 1.16 reads dataset-supplied `ref_chosen_logps`/`ref_rejected_logps` only when `precompute_ref_log_probs=True`,
and then `__init__` (and `evaluate(dataset)`) call `_precompute_ref_logps`, which runs the reference over the whole
data set and concatenates its own columns onto the dataset: with columns already present that fails on duplicate
column names, and without them it costs a reference pass per run. `CachedRefDPOTrainer` overrides that one method
to hand back the datasets that already carry the columns. `check_trl_path()` fails loudly when a TRL upgrade moves
the hook (tests/train/test_dpo_trainer.py runs it).
"""

from __future__ import annotations

import inspect
import logging

from common.errors import ModelError

log = logging.getLogger(__name__)

REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
TRL_VERSION = "1.16.0"
OVERRIDDEN = "_precompute_ref_logps"
OVERRIDDEN_PARAMS = ("self", "dataset", "name", "batch_size")


class TrlPathChanged(AssertionError):
    """The TRL internals CachedRefDPOTrainer relies on are not where they were in TRL 1.16."""


def check_trl_path() -> None:
    """Raise TrlPathChanged unless TRL still routes reference log-probs through the overridden method."""
    import trl
    from trl import DPOTrainer

    problems = []
    if trl.__version__ != TRL_VERSION:
        problems.append(f"trl is {trl.__version__}, CachedRefDPOTrainer was written against {TRL_VERSION}")
    method = getattr(DPOTrainer, OVERRIDDEN, None)
    if method is None:
        problems.append(f"DPOTrainer.{OVERRIDDEN} no longer exists")
    else:
        params = tuple(inspect.signature(method).parameters)
        if params != OVERRIDDEN_PARAMS:
            problems.append(
                f"DPOTrainer.{OVERRIDDEN}{params} changed signature (expected {OVERRIDDEN_PARAMS})"
            )
    init = inspect.getsource(DPOTrainer.__init__)
    if f"self.{OVERRIDDEN}(" not in init or "if args.precompute_ref_log_probs:" not in init:
        problems.append(
            f"DPOTrainer.__init__ no longer calls self.{OVERRIDDEN} under precompute_ref_log_probs"
        )
    loss = inspect.getsource(DPOTrainer._compute_loss)
    if "if self.precompute_ref_logps:" not in loss or 'inputs["ref_chosen_logps"]' not in loss:
        problems.append(
            "DPOTrainer._compute_loss no longer reads ref_*_logps from the batch when precomputing"
        )
    signature = DPOTrainer._set_signature_columns_if_needed
    if not all(c in inspect.getsource(signature) for c in REF_COLUMNS):
        problems.append("DPOTrainer drops the ref_*_logps columns before collating")
    if problems:
        raise TrlPathChanged("; ".join(problems))


def cached_ref_trainer_class():
    """CachedRefDPOTrainer (imports trl on first call)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from trl import DPOTrainer

    class CachedRefDPOTrainer(DPOTrainer):
        """DPOTrainer whose reference log-probs come from the datasets; it never runs the reference model."""

        def __init__(self, *args, **kwargs):
            if kwargs.get("ref_model") is not None:
                raise ModelError("CachedRefDPOTrainer takes no ref_model: the reference log-probs are cached")
            args_ = kwargs.get("args") if "args" in kwargs else (args[2] if len(args) > 2 else None)
            if args_ is None or not args_.precompute_ref_log_probs:
                # Without it TRL's loss ignores the dataset columns and runs the reference forward every step.
                raise ModelError("CachedRefDPOTrainer needs args.precompute_ref_log_probs=True")
            super().__init__(*args, **kwargs)

        def _precompute_ref_logps(self, dataset, name, batch_size):
            """Return the dataset as is: it already carries the cached reference log-probs."""
            names = getattr(dataset, "column_names", None) or []
            missing = [c for c in REF_COLUMNS if c not in names]
            if missing:
                raise ModelError(
                    f"the {name} dataset lacks {', '.join(missing)}: fill them from the reference cache first "
                    "(train.refcache); CachedRefDPOTrainer never runs the reference model"
                )
            log.debug("%s: using %d cached reference log-prob pairs", name, len(dataset))
            return dataset

        def compute_ref_log_probs(self, model, inputs):
            """Never called on our path; refuse rather than silently run a reference forward."""
            raise ModelError("CachedRefDPOTrainer does not compute reference log-probs")

    CachedRefDPOTrainer.__module__ = __name__
    CachedRefDPOTrainer.__qualname__ = "CachedRefDPOTrainer"
    _CLASS = CachedRefDPOTrainer
    return _CLASS


_CLASS = None


def __getattr__(name: str):
    if name == "CachedRefDPOTrainer":
        return cached_ref_trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
