"""Fast batched generation: shared prompt prefill, a preallocated KV cache, finished rows dropped, free slots refilled.

What is sampled is exactly what `models.generation.generate_batch` samples: the same logits, temperature and
top-p, and the same per-row seeded Gumbel noise stream (one float32 exponential vector per row and step from
that row's own generator), so a completion depends only on its own prompt, sampling parameters and seed.

Here: admission (which prompts prefill together), the forwards and the finished rows. The per-row sampler is
`models.sampling.sample_rows`; the preallocated KV cache the rows decode in is `models.kv_cache`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

from models.generation import left_pad
from models.kv_cache import Batch, Row
from models.sampling import Generation, SamplingParams, sample_rows

# The names this module had before the cache and the sampler moved out (bench/generation.py and a test use them).
_Batch, _Row = Batch, Row

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Request:
    """One completion to generate: prompt token ids, sampling parameters and the row's seed."""

    ids: tuple[int, ...]
    params: SamplingParams
    seed: int


def generate_chats(
    local,
    chats: list,
    params: list[SamplingParams],
    seeds: list[int],
    *,
    batch_size: int,
    progress: Progress | None = None,
) -> list[Generation]:
    """A `LocalModel`'s completions for chats with per-chat sampling parameters (e.g. every cell of a group at once).

    The same chat under several settings is prefilled once, so K responses per prompt cost one prompt forward.
    """
    from common.errors import ModelError

    if not len(chats) == len(params) == len(seeds):
        raise ModelError(
            f"need one seed and one SamplingParams per prompt, got {len(seeds)} seeds and {len(params)} params "
            f"for {len(chats)} prompts"
        )
    requests = [
        Request(tuple(local._prompt_ids(chat)), p, int(s))
        for chat, p, s in zip(chats, params, seeds, strict=True)
    ]
    return generate_requests(
        local.model,
        local.tokenizer,
        requests,
        local.eos_token_ids,
        local.tokenizer.pad_token_id,
        batch_size=batch_size,
        progress=progress,
        lock=local._lock,
    )


def generate_requests(
    model,
    tokenizer,
    requests: list[Request],
    eos_ids: list[int],
    pad_id: int,
    *,
    batch_size: int,
    share_prefill: bool = True,
    refill: bool = True,
    progress: Progress | None = None,
    lock=None,
) -> list[Generation]:
    """Generate every request with at most `batch_size` rows decoding at once; results in request order."""
    import torch

    from common.errors import ModelError

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ModelError(f"batch_size must be a positive integer, got {batch_size!r}")
    started = time.perf_counter()
    runner = _Runner(model, tokenizer, eos_ids, pad_id, lock)
    # Prompts that occur several times (the K responses of a prompt) are prefilled once and their cache copied.
    groups: dict[tuple, list[int]] = {}
    for i, request in enumerate(requests):
        key = request.ids if share_prefill else (i,)
        groups.setdefault(key, []).append(i)
    pending: list[tuple[tuple[int, ...], list[int]]] = []
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            pending.append((requests[members[0]].ids, members[start : start + batch_size]))
    # Similar lengths side by side waste less compute on left padding.
    pending.sort(key=lambda item: len(item[0]))
    pending.reverse()  # popped from the end: shortest first

    results: list[_Done | None] = [None] * len(requests)
    reporter = _Reporter(progress, len(requests), batch_size)
    batch: Batch | None = None
    with torch.inference_mode():
        while pending or batch is not None:
            live = 0 if batch is None else batch.live
            free = batch_size - live
            # Admit new prompts into an empty batch, or (refill) once a quarter of the slots are free: each
            # admission costs a prefill forward and a cache copy, so it waits for several free slots.
            wants = batch is None or (refill and free >= max(1, batch_size // 4))
            if pending and wants and len(pending[-1][1]) <= free:
                admitted = []
                while pending and len(pending[-1][1]) <= free:
                    admitted.append(pending.pop())
                    free -= len(admitted[-1][1])
                fresh = runner.prefill(admitted, requests)
                batch = fresh if batch is None else batch.merge(fresh)
            else:
                runner.step(batch)
            for row in batch.take_finished():
                results[row.request] = runner.finish(row)
                reporter.add(1)
            if batch.live == 0:
                batch = None
            elif batch.dead * 4 >= batch.size:
                batch.compact()
    elapsed = time.perf_counter() - started
    seconds = elapsed / max(1, len(requests))
    log.debug("%d completions (%d prompts) in %.1f s", len(requests), len(groups), elapsed)
    return [
        Generation(r.text, r.n_tokens, seconds, r.seed, r.finish_reason)  # type: ignore[union-attr]
        for r in results
    ]


class _Reporter:
    """Reports progress in steps of `batch_size` completions, like the batch-by-batch generator did."""

    def __init__(self, progress: Progress | None, total: int, every: int):
        self.progress, self.total, self.every = progress, total, every
        self.done = 0
        self.reported = 0

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is None:
            return
        while self.reported + self.every <= self.done and self.reported + self.every < self.total:
            self.reported += self.every
            self.progress(self.reported, self.total)
        if self.done == self.total:
            self.reported = self.total
            self.progress(self.total, self.total)


class _Runner:
    """Model forwards and per-row sampling."""

    def __init__(self, model, tokenizer, eos_ids, pad_id, lock):
        self.model = model
        self.tokenizer = tokenizer
        self.eos = set(eos_ids)
        self.pad_id = pad_id
        self.lock = lock if lock is not None else nullcontext()
        self.device = model.device

    def prefill(self, admitted, requests) -> Batch:
        """One left-padded forward over the admitted prompts; each prompt's cache row is copied per response."""
        import torch
        from transformers import DynamicCache

        input_ids, attention = left_pad([ids for ids, _ in admitted], self.pad_id)
        # As transformers' generate does: positions count real tokens, padding sits at position 0.
        positions = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 0)
        cache = DynamicCache(config=self.model.config)
        with self.lock:
            out = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                position_ids=positions.to(self.device),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        # float32 like transformers' generate, whatever the model dtype: the same scores reach the sampler.
        logits = out.logits[:, -1, :].float()
        source = []
        rows = []
        for b, (_, members) in enumerate(admitted):
            for i in members:
                request = requests[i]
                generator = None
                if not request.params.greedy:
                    generator = torch.Generator(device="cpu")
                    generator.manual_seed(int(request.seed))
                rows.append(Row(i, int(request.seed), request.params, generator, []))
                source.append(b)
        index = torch.tensor(source, dtype=torch.long, device=self.device)
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        budget = max(row.params.max_new_tokens for row in rows)
        batch = Batch.from_prefill(layers, attention.to(self.device), index, rows, budget)
        # With a device map the logits come off the last device; `.to` is free when it is the same one.
        self._advance(batch, logits.index_select(0, index.to(logits.device)))
        return batch

    def step(self, batch: Batch) -> None:
        """One decode forward over every row of the batch (rows finished since the last compaction included)."""
        import torch

        tokens = torch.tensor(
            [row.tokens[-1] if row.tokens else self.pad_id for row in batch.rows], dtype=torch.long
        )
        mask = batch.extend_mask()
        with self.lock:
            out = self.model(
                input_ids=tokens.to(self.device)[:, None],
                attention_mask=mask,
                position_ids=batch.positions[:, None],
                past_key_values=batch.cache,
                use_cache=True,
            )
        batch.positions += 1
        self._advance(batch, out.logits[:, -1, :].float())

    def _advance(self, batch: Batch, logits) -> None:
        """Sample one token for each live row and mark the rows that end here."""
        live = [j for j, row in enumerate(batch.rows) if not row.done]
        picks = sample_rows(logits, [batch.rows[j] for j in live], live)
        for j, token in zip(live, picks, strict=True):
            row = batch.rows[j]
            row.tokens.append(token)
            if token in self.eos:
                row.done, row.finish_reason = True, "stop"
            elif len(row.tokens) >= row.params.max_new_tokens:
                row.done, row.finish_reason = True, "length"

    def finish(self, row: Row):
        """The row's text and counts (EOS counted, nothing after it)."""
        text = self.tokenizer.decode(row.tokens, skip_special_tokens=True).strip()
        return _Done(text, len(row.tokens), row.seed, row.finish_reason)


@dataclass(frozen=True)
class _Done:
    text: str
    n_tokens: int
    seed: int
    finish_reason: str
