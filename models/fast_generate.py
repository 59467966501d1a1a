"""Fast batched generation: shared prompt prefill, a preallocated KV cache, finished rows dropped, free slots refilled.

What is sampled is exactly what `models.generation.generate_batch` samples: the same logits, temperature and
top-p, and the same per-row seeded Gumbel noise stream (one float32 exponential vector per row and step from
that row's own generator), so a completion depends only on its own prompt, sampling parameters and seed.
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

from models.sampling import Generation, SamplingParams, nucleus_ids

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
    from errors import ModelError

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

    from errors import ModelError

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
    batch: _Batch | None = None
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


@dataclass
class _Row:
    """Decoding state of one request."""

    request: int
    seed: int
    params: SamplingParams
    generator: object | None
    tokens: list[int]
    done: bool = False
    finish_reason: str = "length"


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

    def prefill(self, admitted, requests) -> _Batch:
        """One left-padded forward over the admitted prompts; each prompt's cache row is copied per response."""
        import torch
        from transformers import DynamicCache

        width = max(len(ids) for ids, _ in admitted)
        input_ids = torch.full((len(admitted), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(admitted), width), dtype=torch.long)
        for b, (ids, _) in enumerate(admitted):
            input_ids[b, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[b, width - len(ids) :] = 1
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
                rows.append(_Row(i, int(request.seed), request.params, generator, []))
                source.append(b)
        index = torch.tensor(source, dtype=torch.long, device=self.device)
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        budget = max(row.params.max_new_tokens for row in rows)
        batch = _Batch.from_prefill(layers, attention.to(self.device), index, rows, budget)
        # With a device map the logits come off the last device; `.to` is free when it is the same one.
        self._advance(batch, logits.index_select(0, index.to(logits.device)))
        return batch

    def step(self, batch: _Batch) -> None:
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

    def _advance(self, batch: _Batch, logits) -> None:
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

    def finish(self, row: _Row):
        """The row's text and counts (EOS counted, nothing after it)."""
        text = self.tokenizer.decode(row.tokens, skip_special_tokens=True).strip()
        return _Done(text, len(row.tokens), row.seed, row.finish_reason)


@dataclass(frozen=True)
class _Done:
    text: str
    n_tokens: int
    seed: int
    finish_reason: str


def sample_rows(logits, rows, index) -> list[int]:
    """Next token per row: argmax when greedy, else tempered top-p logits plus the row's own Gumbel noise."""
    import torch

    picks: dict[int, int] = {}
    greedy = [j for j, row in enumerate(rows) if row.params.greedy]
    if greedy:
        chosen = logits[[index[j] for j in greedy]].argmax(dim=-1).tolist()
        picks.update(zip(greedy, chosen, strict=True))
    sampled = [j for j, row in enumerate(rows) if not row.params.greedy]
    if sampled:
        sub = logits[[index[j] for j in sampled]]
        temps = torch.tensor(
            [rows[j].params.temperature for j in sampled], dtype=sub.dtype, device=sub.device
        )
        # Dividing by a per-row tensor of the logits' dtype is bitwise the division by the scalar temperature.
        tempered = sub / temps[:, None]
        kept: list = [None] * len(sampled)
        for top_p in sorted({rows[j].params.top_p for j in sampled}):
            members = [k for k, j in enumerate(sampled) if rows[j].params.top_p == top_p]
            if top_p < 1.0:
                for k, ids in zip(members, nucleus_ids(tempered[members], top_p), strict=True):
                    kept[k] = ids.sort().values
            else:
                everything = torch.arange(tempered.shape[-1], device=tempered.device)
                for k in members:
                    kept[k] = everything
        vocab = tempered.shape[-1]
        tiny = torch.finfo(torch.float32).tiny
        for k, j in enumerate(sampled):
            # The full vocabulary-sized draw keeps each row's noise stream identical to GumbelSampler's, though
            # only the nucleus entries are looked at (the rest are -inf there and can never win the argmax).
            noise = torch.empty(vocab, dtype=torch.float32).exponential_(generator=rows[j].generator)
            ids = kept[k]
            gumbel = -torch.log(noise.to(ids.device)[ids].clamp_min(tiny))
            scores = tempered[k, ids] + gumbel.to(dtype=tempered.dtype)
            picks[j] = int(ids[scores.argmax()])
    return [picks[j] for j in range(len(rows))]


class _Batch:
    """Rows decoding together: a left-padded KV cache in preallocated buffers, the attention mask, positions."""

    def __init__(self, keys, values, mask, positions, rows, length):
        self.keys = keys  # per layer [B, H, capacity, D]
        self.values = values
        self.mask = mask  # [B, capacity], 1 on real tokens
        self.positions = positions  # [B], the position of the next token
        self.rows = rows
        self.length = length  # columns in use
        self.cache = _buffer_cache(self)

    @classmethod
    def from_prefill(cls, layers, attention, index, rows, budget) -> _Batch:
        import torch

        width = attention.shape[1]
        capacity = width + budget
        keys, values = [], []
        for k, v in layers:
            shape = (len(rows), k.shape[1], capacity, k.shape[3])
            kb = torch.zeros(shape, dtype=k.dtype, device=k.device)
            vb = torch.zeros(shape, dtype=v.dtype, device=v.device)
            # A device-mapped model keeps each layer's cache on that layer's device.
            kb[:, :, :width] = k.index_select(0, index.to(k.device))
            vb[:, :, :width] = v.index_select(0, index.to(v.device))
            keys.append(kb)
            values.append(vb)
        mask = torch.zeros((len(rows), capacity), dtype=torch.long, device=attention.device)
        mask[:, :width] = attention.index_select(0, index)
        positions = mask.sum(-1)
        return cls(keys, values, mask, positions, rows, width)

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def live(self) -> int:
        return sum(not row.done for row in self.rows)

    @property
    def dead(self) -> int:
        return sum(row.done and row.request < 0 for row in self.rows)

    def take_finished(self) -> list[_Row]:
        """Rows that ended since the last call; they stay in the batch (as dead rows) until a compaction."""
        out = []
        for row in self.rows:
            if row.done and row.request >= 0:
                out.append(_Row(row.request, row.seed, row.params, None, row.tokens, True, row.finish_reason))
                row.request = -1
        return out

    def extend_mask(self):
        """Mark the column the next token writes as real (capacity covers every row's remaining budget)."""
        self.mask[:, self.length] = 1
        return self.mask[:, : self.length + 1]

    def compact(self) -> None:
        """Drop finished rows, and the leading columns that are padding for every remaining row."""
        import torch

        keep = [j for j, row in enumerate(self.rows) if not row.done]
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        first = int(mask[:, : self.length].any(dim=0).nonzero()[0])
        self.keys = [k.index_select(0, index.to(k.device))[:, :, first:] for k in self.keys]
        self.values = [v.index_select(0, index.to(v.device))[:, :, first:] for v in self.values]
        self.mask = mask[:, first:].contiguous()
        self.positions = self.positions.index_select(0, index)
        self.rows = [self.rows[j] for j in keep]
        self.length -= first
        self.cache = _buffer_cache(self)

    def merge(self, other: _Batch) -> _Batch:
        """One batch holding this batch's live rows and `other`'s, left-padded to a common length."""
        import torch

        keep = [j for j, row in enumerate(self.rows) if not row.done]
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        mine = self.mask.index_select(0, index)[:, : self.length]
        first = int(mine.any(dim=0).nonzero()[0]) if keep else self.length
        ours = self.length - first
        length = max(ours, other.length)
        budget = max(
            row.params.max_new_tokens - len(row.tokens) for row in [*self.rows, *other.rows] if not row.done
        )
        capacity = length + budget + 1
        n, m = len(keep), other.size
        keys, values = [], []
        for a, b in zip([*self.keys, *self.values], [*other.keys, *other.values], strict=True):
            out = torch.zeros((n + m, a.shape[1], capacity, a.shape[3]), dtype=a.dtype, device=a.device)
            if n:
                out[:n, :, length - ours : length] = a.index_select(0, index.to(a.device))[
                    :, :, first : self.length
                ]
            out[n:, :, length - other.length : length] = b[:, :, : other.length]
            (keys if len(keys) < len(self.keys) else values).append(out)
        mask = torch.zeros((n + m, capacity), dtype=self.mask.dtype, device=self.mask.device)
        if n:
            mask[:n, length - ours : length] = mine[:, first:]
        mask[n:, length - other.length : length] = other.mask[:, : other.length]
        positions = torch.cat([self.positions.index_select(0, index), other.positions])
        rows = [self.rows[j] for j in keep] + other.rows
        return _Batch(keys, values, mask, positions, rows, length)


@functools.cache
def _buffer_layer_class():
    """A transformers cache layer that writes into a preallocated buffer instead of concatenating each step."""
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        def __init__(self, batch: _Batch, index: int):
            super().__init__()
            # A weak reference: batch -> cache -> layer -> batch would be a cycle, and the buffers of every
            # merged-away batch (hundreds of MB each) would wait for the garbage collector instead of being freed.
            self.batch, self.index = weakref.proxy(batch), index
            self.is_initialized = True
            self.dtype, self.device = batch.keys[index].dtype, batch.keys[index].device

        def update(self, key_states, value_states, *args, **kwargs):
            batch, n = self.batch, key_states.shape[-2]
            start = batch.length
            batch.keys[self.index][:, :, start : start + n] = key_states
            batch.values[self.index][:, :, start : start + n] = value_states
            if self.index == len(batch.keys) - 1:
                batch.length += n
            end = start + n
            return batch.keys[self.index][:, :, :end], batch.values[self.index][:, :, :end]

        def get_seq_length(self) -> int:
            return self.batch.length

    return BufferLayer


def _buffer_cache(batch: _Batch):
    from transformers.cache_utils import Cache

    layer = _buffer_layer_class()
    return Cache(layers=[layer(batch, i) for i in range(len(batch.keys))])
