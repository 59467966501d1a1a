"""The KV cache of fast generation: rows decoding together in preallocated, left-padded buffers.

`models.fast_generate` admits prompts (prefill), steps and samples; this module only holds the rows' cache,
attention mask and positions, and merges, compacts and extends them without copying the cache each step.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

from models.sampling import SamplingParams


@dataclass
class Row:
    """Decoding state of one request."""

    request: int
    seed: int
    params: SamplingParams
    generator: object | None
    tokens: list[int]
    done: bool = False
    finish_reason: str = "length"


class Batch:
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
    def from_prefill(cls, layers, attention, index, rows, budget) -> Batch:
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

    def take_finished(self) -> list[Row]:
        """Rows that ended since the last call; they stay in the batch (as dead rows) until a compaction."""
        out = []
        for row in self.rows:
            if row.done and row.request >= 0:
                out.append(Row(row.request, row.seed, row.params, None, row.tokens, True, row.finish_reason))
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

    def merge(self, other: Batch) -> Batch:
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
        return Batch(keys, values, mask, positions, rows, length)


@functools.cache
def _buffer_layer_class():
    """A transformers cache layer that writes into a preallocated buffer instead of concatenating each step."""
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        def __init__(self, batch: Batch, index: int):
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


def _buffer_cache(batch: Batch):
    from transformers.cache_utils import Cache

    layer = _buffer_layer_class()
    return Cache(layers=[layer(batch, i) for i in range(len(batch.keys))])
