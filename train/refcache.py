"""The reference log-prob cache: look up every (prompt, response) of a snapshot, score only the misses once."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from store.train_queries import RefKey

log = logging.getLogger(__name__)

# Responses scored per LocalModel.score call: small enough for steady progress and cancellation, large enough to
# batch well (score() sorts each call by length).
CHUNK = 64


@dataclass(frozen=True)
class RefFill:
    """What filling the reference log-probs of a snapshot took."""

    hits: int
    computed: int
    seconds: float
    key: RefKey

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref_hits": self.hits,
            "ref_computed": self.computed,
            "ref_seconds": round(self.seconds, 3),
            "ref_model_fingerprint": self.key.model_fingerprint,
        }


def template_hash(tokenizer) -> str:
    """Short sha256 of the tokenizer's chat template."""
    return hashlib.sha256((tokenizer.chat_template or "").encode("utf-8")).hexdigest()[:16]


def ref_key(model, max_length: int | None, truncation_mode: str) -> RefKey:
    """The cache key of a LocalModel scored with TRL's truncation settings."""
    return RefKey(model.fingerprint, template_hash(model.tokenizer), int(max_length or 0), truncation_mode)


def fill_ref_logps(
    store,
    model,
    rows: list[dict[str, Any]],
    *,
    max_length: int | None,
    truncation_mode: str,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RefFill:
    """Set `ref_chosen_logps`/`ref_rejected_logps` on every row: cached values first, one scoring pass for the rest.

    New values are stored as soon as each chunk is scored, so a cancelled or crashed run still leaves them for the
    next one; `should_stop` firing between chunks raises InterruptedError.
    """
    started = time.perf_counter()
    key = ref_key(model, max_length, truncation_mode)
    wanted = []
    for row in rows:
        wanted.append((row["prompt_hash"], row["chosen_hash"]))
        wanted.append((row["prompt_hash"], row["rejected_hash"]))
    cached = store.get_ref_logps(key, wanted)
    texts: dict[tuple[str, str], tuple[list[dict], str]] = {}
    for row in rows:
        texts[(row["prompt_hash"], row["chosen_hash"])] = (row["prompt"], row["chosen"])
        texts[(row["prompt_hash"], row["rejected_hash"])] = (row["prompt"], row["rejected"])
    misses = [k for k in dict.fromkeys(wanted) if k not in cached]
    hits = len(set(wanted)) - len(misses)
    log.info("reference log-probs: %d cached, %d to score with %s", hits, len(misses), model.name)
    # Longest first by characters, so each chunk holds similar lengths and the first chunk shows the worst case.
    misses.sort(key=lambda k: -(len(texts[k][1]) + sum(len(m["content"]) for m in texts[k][0])))
    for start in range(0, len(misses), CHUNK):
        if should_stop is not None and should_stop():
            raise InterruptedError("cancelled while scoring reference log-probs")
        chunk = misses[start : start + CHUNK]
        values = model.score(
            [texts[k][0] for k in chunk],
            [texts[k][1] for k in chunk],
            batch_size=batch_size,
            max_length=max_length,
            truncation_mode=truncation_mode,
        )
        store.put_ref_logps(key, [(p, r, v) for (p, r), v in zip(chunk, values, strict=True)])
        cached.update(zip(chunk, values, strict=True))
        if progress is not None:
            progress(min(start + CHUNK, len(misses)), len(misses))
    for row in rows:
        row["ref_chosen_logps"] = cached[(row["prompt_hash"], row["chosen_hash"])]
        row["ref_rejected_logps"] = cached[(row["prompt_hash"], row["rejected_hash"])]
    return RefFill(hits=hits, computed=len(misses), seconds=time.perf_counter() - started, key=key)
