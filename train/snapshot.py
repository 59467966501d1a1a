"""The data snapshot of a DPO run: confirmed triples filtered by policy, split by a seeded hash, hashed."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from common.errors import UserInputError
from common.vocab import Decision, LabelSource, PairPolicy

log = logging.getLogger(__name__)

# The columns of train.parquet / val.parquet besides the reference log-probs the refcache adds.
COLUMNS = (
    "label_id",
    "pair_id",
    "prompt_id",
    "annotator",
    "source",
    "decision",
    "edited",
    "mirrored",
    "prompt",
    "chosen",
    "rejected",
    "prompt_hash",
    "chosen_hash",
    "rejected_hash",
)


@dataclass
class Snapshot:
    """Train and validation rows (dicts with COLUMNS) plus what was left out and why."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    dataset_hash: str
    sources: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.train) + len(self.val)

    def summary(self) -> dict[str, Any]:
        """Sizes and provenance for the runs table and the report."""
        return {
            "train_pairs": len(self.train),
            "val_pairs": len(self.val),
            "sources": dict(self.sources),
            "dropped": dict(self.dropped),
            "dataset_hash": self.dataset_hash,
        }


def canonical_messages(messages: list[dict]) -> list[dict[str, str]]:
    """Role and content only: what both the scorer and TRL see, so their tokens agree."""
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]


def text_hash(text: str) -> str:
    """sha256 of a response text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def messages_hash(messages: list[dict]) -> str:
    """sha256 of the canonical JSON of chat messages (the prompts table's content hash)."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def build_snapshot(triples, cfg) -> Snapshot:
    """Select, expand and split the triples per `cfg`; refuse a data set too small to train and validate on."""
    rows, dropped, available = select_rows(triples, cfg)
    needed = cfg.min_train_pairs + cfg.min_val_pairs
    if len(rows) < needed:
        raise UserInputError(_too_small(needed, len(rows), dropped, available, cfg))
    train, val = split_rows(rows, cfg.val_fraction, cfg.min_val_pairs, cfg.split_seed)
    if len(train) < cfg.min_train_pairs:
        raise UserInputError(
            f"need at least {cfg.min_train_pairs} training triples after holding out {len(val)} for validation, "
            f"have {len(train)} (the pairs' labels are too concentrated; label more pairs)"
        )
    sources = Counter(r["source"] for r in rows if not r["mirrored"])
    return Snapshot(train, val, dataset_hash(train, val), dict(sources), dict(dropped))


def select_rows(triples, cfg) -> tuple[list[dict[str, Any]], Counter, int]:
    """Training rows from triples: sources filter, tie/both-bad policies, empty or identical texts, limit."""
    dropped: Counter = Counter()
    rows: list[dict[str, Any]] = []
    available = 0
    for t in sorted(triples, key=lambda t: t.label_id):
        available += 1
        if t.source not in cfg.sources:
            dropped[f"source {t.source}"] += 1
            continue
        policy = {Decision.TIE: cfg.tie_policy, Decision.BOTH_BAD: cfg.both_bad_policy}.get(t.decision)
        if policy == PairPolicy.DROP:
            dropped[t.decision] += 1
            continue
        if not t.chosen.strip() or not t.rejected.strip() or t.chosen == t.rejected:
            dropped["empty or identical responses"] += 1  # no preference signal in the pair
            continue
        base = _row(t, t.chosen, t.rejected, mirrored=False)
        group = [base]
        if policy == PairPolicy.BOTH_ORDERS:
            # A tie says neither is better: both orders cancel at the start and pull the reward gap to zero.
            group.append(_row(t, t.rejected, t.chosen, mirrored=True))
        if cfg.limit is not None and len(rows) + len(group) > cfg.limit:
            dropped["over the limit"] += 1
            continue
        rows.extend(group)
    return rows, dropped, available


def split_rows(
    rows: list[dict[str, Any]], val_fraction: float, min_val: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split by pair: a pair lands in validation when its seeded hash is below `val_fraction`, topped up to `min_val`."""
    by_pair: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_pair.setdefault(int(row["pair_id"]), []).append(row)
    # A pair's rows (several annotators, mirrored ties) stay on one side, so validation never sees a training pair.
    ranked = sorted(by_pair, key=lambda pid: (_unit_hash(seed, pid), pid))
    val_pairs: set[int] = set()
    val_count = 0
    for pid in ranked:
        if _unit_hash(seed, pid) >= val_fraction and val_count >= min_val:
            break
        val_pairs.add(pid)
        val_count += len(by_pair[pid])
    train = [r for r in rows if int(r["pair_id"]) not in val_pairs]
    val = [r for r in rows if int(r["pair_id"]) in val_pairs]
    return train, val


def dataset_hash(train: list[dict[str, Any]], val: list[dict[str, Any]]) -> str:
    """sha256 over the canonical JSON of every row and its side of the split."""
    digest = hashlib.sha256()
    for side, part in (("train", train), ("val", val)):
        for row in part:
            record = {k: row[k] for k in COLUMNS}
            record["split"] = side
            digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()


def triple_columns(prompt, chosen: str, rejected: str) -> dict[str, Any]:
    """A triple's snapshot columns: canonical prompt, texts, and the hashes that key the reference cache."""
    prompt = canonical_messages(prompt)
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "prompt_hash": messages_hash(prompt),
        "chosen_hash": text_hash(chosen),
        "rejected_hash": text_hash(rejected),
    }


def _row(t, chosen: str, rejected: str, *, mirrored: bool) -> dict[str, Any]:
    return {
        "label_id": int(t.label_id),
        "pair_id": int(t.pair_id),
        "prompt_id": int(t.prompt_id),
        "annotator": t.annotator,
        "source": t.source,
        "decision": t.decision,
        "edited": bool(t.edited),
        "mirrored": mirrored,
        **triple_columns(t.prompt, chosen, rejected),
    }


def _unit_hash(seed: int, pair_id: int) -> float:
    """A number in [0, 1) fixed by (seed, pair id): the split never depends on the global RNG or the row order."""
    digest = hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _too_small(needed: int, have: int, dropped: Counter, available: int, cfg) -> str:
    message = f"need at least {needed} confirmed preference triples, have {have}"
    if dropped:
        parts = ", ".join(f"{n} {why}" for why, n in sorted(dropped.items()))
        message += f" (of {available}; left out: {parts})"
    hints = []
    if any(k == f"source {LabelSource.JUDGE}" for k in dropped):
        hints.append("--include-judge uses judge labels")
    if not hints:
        hints.append("label more pairs in Annotate")
    return f"{message}; {'; '.join(hints)}"
