"""The reference log-prob cache: look up every (prompt, response) of a snapshot, score only the misses once.

A DPO run splits the work across the database lock (DESIGN.md): the parent writes the cached values that could
match into the run folder (`write_candidates`), the worker picks those of the model it loaded, scores the misses on
its own devices and appends them to `ref_new*.jsonl` (`fill_in_worker`), and the parent stores them when the run
ends, however it ends (`ingest_new`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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


# Run-folder files: the parent's candidates, and the worker's new values (one file per process).
CANDIDATES = "ref_cache.parquet"
NEW = "ref_new.jsonl"
NEW_GLOB = "ref_new*.jsonl"
_KEY_FIELDS = ("model_fingerprint", "template_hash", "max_length", "truncation_mode")


def wanted_pairs(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every distinct (prompt_hash, response_hash) of the rows, chosen and rejected."""
    wanted = []
    for row in rows:
        wanted.append((row["prompt_hash"], row["chosen_hash"]))
        wanted.append((row["prompt_hash"], row["rejected_hash"]))
    return list(dict.fromkeys(wanted))


def write_candidates(
    store, rows: list[dict[str, Any]], path: Path, *, max_length: int | None, truncation_mode: str
) -> int:
    """Write the cached log-probs of the rows' responses under these truncation settings, for any model."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    found = store.ref_logps_any_model(wanted_pairs(rows), int(max_length or 0), truncation_mode)
    names = ("model_fingerprint", "template_hash", "prompt_hash", "response_hash", "logp")
    columns = {name: [r[i] for r in found] for i, name in enumerate(names)}
    schema = pa.schema([(n, pa.float64() if n == "logp" else pa.string()) for n in names])
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)
    return len(found)


def ingest_new(store, run_dir: Path) -> int:
    """Store what the worker scored (complete lines of every ref_new*.jsonl); returns the rows that were new."""
    by_key: dict[RefKey, list[tuple[str, str, float]]] = {}
    for line in _new_lines(Path(run_dir)):
        key = RefKey(*(line[f] for f in _KEY_FIELDS))
        by_key.setdefault(key, []).append((line["prompt_hash"], line["response_hash"], float(line["logp"])))
    return sum(store.put_ref_logps(key, values) for key, values in by_key.items())


def score_responses(
    local,
    items: list[tuple[list[dict], str]],
    *,
    max_length: int | None,
    truncation_mode: str,
    batch_size: int = 8,
) -> list[float]:
    """Summed log-prob of each (prompt, response), as LocalModel.score, with each prompt's shared tokens run once."""
    from models.scoring import check_truncation

    check_truncation(max_length, truncation_mode)
    return _score_tokenized(
        local,
        [_tokens(local.tokenizer, p, r) for p, r in items],
        items,
        max_length,
        truncation_mode,
        batch_size,
    )


def count_truncated(
    tokenizer, rows: list[dict[str, Any]], *, max_length: int | None, tokens=None
) -> dict[str, int]:
    """Pairs whose prompt + chosen or prompt + rejected is longer than max_length tokens (TRL cuts them)."""
    tokens = tokens if tokens is not None else {}
    longest_pair, truncated = 0, 0
    for row in rows:
        lengths = []
        for side in ("chosen", "rejected"):
            k = (
                (row["prompt_hash"], row[f"{side}_hash"])
                if "prompt_hash" in row
                else (json.dumps(row["prompt"]), row[side])
            )
            if k not in tokens:
                tokens[k] = _tokens(tokenizer, row["prompt"], row[side])
            prompt_ids, completion_ids = tokens[k]
            lengths.append(len(prompt_ids) + len(completion_ids))
        longest_pair = max(longest_pair, *lengths)
        truncated += int(max_length is not None and max(lengths) > max_length)
    return {"truncated_pairs": truncated, "pairs": len(rows), "longest_pair": longest_pair}


def fill_in_worker(
    local,
    rows: list[dict[str, Any]],
    run_dir: Path,
    *,
    max_length: int | None,
    truncation_mode: str,
    batch_size: int = 8,
    rank: int = 0,
    world: int = 1,
    barrier: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Set the rows' reference columns from the candidates; score the misses (this process's share) on `local`.

    New values are appended to the run folder chunk by chunk, so a crash or a cancel keeps what was scored.
    Returns the numbers the run report shows (hits, computed, truncated pairs).
    """
    from models.scoring import check_truncation

    started = time.perf_counter()
    check_truncation(max_length, truncation_mode)
    run_dir = Path(run_dir)
    key = ref_key(local, max_length, truncation_mode)
    known = _known(run_dir, key)
    texts: dict[tuple[str, str], tuple[list[dict], str]] = {}
    for row in rows:
        texts[(row["prompt_hash"], row["chosen_hash"])] = (row["prompt"], row["chosen"])
        texts[(row["prompt_hash"], row["rejected_hash"])] = (row["prompt"], row["rejected"])
    tokens: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    lengths = count_truncated(local.tokenizer, rows, max_length=max_length, tokens=tokens)
    misses = [k for k in texts if k not in known]
    hits = len(texts) - len(misses)
    # Responses to one prompt next to each other (they share the prompt's forward), longest prompts first.
    size = {k: len(tokens[k][0]) + len(tokens[k][1]) for k in misses}
    group_size: dict[str, int] = {}
    for (p, _), n in size.items():
        group_size[p] = max(group_size.get(p, 0), n)
    misses.sort(key=lambda k: (-group_size[k[0]], k[0], k[1]))
    prompts = list(dict.fromkeys(p for p, _ in misses))
    mine_prompts = set(prompts[rank::world])  # a prompt's responses stay on one process
    mine = [k for k in misses if k[0] in mine_prompts]
    log.info(
        "reference log-probs: %d cached, %d to score (%d on this process) with %s",
        hits,
        len(misses),
        len(mine),
        local.name,
    )
    if world > 1 and barrier is not None:
        barrier()  # every process has read the same cache before any of them appends to it: the same misses
    path = run_dir / (NEW if rank == 0 else f"ref_new.rank{rank}.jsonl")
    record = dict(
        zip(
            _KEY_FIELDS,
            (key.model_fingerprint, key.template_hash, key.max_length, key.truncation_mode),
            strict=True,
        )
    )
    done = 0
    with open(path, "a", encoding="utf-8") as out:
        for start in range(0, len(mine), CHUNK):
            chunk = mine[start : start + CHUNK]
            values = _score_tokenized(
                local,
                [tokens[k] for k in chunk],
                [texts[k] for k in chunk],
                max_length,
                truncation_mode,
                batch_size,
            )
            for (p, r), value in zip(chunk, values, strict=True):
                out.write(json.dumps({**record, "prompt_hash": p, "response_hash": r, "logp": value}) + "\n")
                known[(p, r)] = value
            out.flush()
            done += len(chunk)
            if progress is not None:
                progress(done, len(mine))
            # After the chunk is on disk: a cancelled run still leaves it for the next one.
            if should_stop is not None and should_stop():
                raise InterruptedError("cancelled while scoring reference log-probs")
    if world > 1 and barrier is not None:
        barrier()  # every process's share is on disk
        known.update(_known(run_dir, key, candidates=False))
    for row in rows:
        row["ref_chosen_logps"] = known[(row["prompt_hash"], row["chosen_hash"])]
        row["ref_rejected_logps"] = known[(row["prompt_hash"], row["rejected_hash"])]
    return {
        "ref_hits": hits,
        "ref_computed": len(misses),
        "ref_seconds": round(time.perf_counter() - started, 3),
        "ref_model_fingerprint": key.model_fingerprint,
        "max_length": max_length,
        **lengths,
    }


def _tokens(tokenizer, prompt: list[dict], response: str) -> tuple[list[int], list[int]]:
    from models.scoring import split_prompt_completion

    return split_prompt_completion(tokenizer, prompt, response)


def _score_tokenized(local, tokenized, items, max_length, truncation_mode, batch_size) -> list[float]:
    """Truncate like TRL's collator, group by prompt, and score each group with one shared prompt forward."""
    from models.scoring import score_groups, truncate

    groups: dict[str, list[int]] = {}
    for i, (prompt, _) in enumerate(items):
        groups.setdefault(json.dumps(prompt, sort_keys=True), []).append(i)
    rows = [truncate(p, c, max_length, truncation_mode) for p, c in tokenized]
    members = list(groups.values())
    lock = getattr(local, "_lock", None)
    if lock is not None:
        with lock:
            sums = score_groups(
                local.model, local.tokenizer.pad_token_id, [[rows[i] for i in m] for m in members], batch_size
            )
    else:
        sums = score_groups(
            local.model, local.tokenizer.pad_token_id, [[rows[i] for i in m] for m in members], batch_size
        )
    values = [0.0] * len(items)
    for m, group_sums in zip(members, sums, strict=True):
        for i, value in zip(m, group_sums, strict=True):
            values[i] = value
    return values


def _known(run_dir: Path, key: RefKey, *, candidates: bool = True) -> dict[tuple[str, str], float]:
    """Values under `key`: the parent's candidates and what any worker already appended to this folder."""
    known: dict[tuple[str, str], float] = {}
    path = run_dir / CANDIDATES
    if candidates and path.is_file():
        import pyarrow.parquet as pq

        for row in pq.read_table(path).to_pylist():
            if (row["model_fingerprint"], row["template_hash"]) == (key.model_fingerprint, key.template_hash):
                known[(row["prompt_hash"], row["response_hash"])] = float(row["logp"])
    wanted = tuple(getattr(key, f) for f in _KEY_FIELDS)
    for line in _new_lines(run_dir):
        if tuple(line[f] for f in _KEY_FIELDS) == wanted:
            known[(line["prompt_hash"], line["response_hash"])] = float(line["logp"])
    return known


def _new_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Complete, well-formed lines of the worker's ref_new*.jsonl files (a killed worker may leave a torn one)."""
    lines = []
    for path in sorted(run_dir.glob(NEW_GLOB)):
        for raw in path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if (
                isinstance(line, dict)
                and {*_KEY_FIELDS, "prompt_hash", "response_hash", "logp"} <= line.keys()
            ):
                lines.append(line)
    return lines
