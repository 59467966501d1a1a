"""Sampling parameters, generation results, and per-row seeded sampling via the Gumbel-max trick.

`GumbelSampler` samples inside transformers' `generate`; `sample_rows` draws the same samples for
`models.fast_generate`, one row at a time from the same per-row noise stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from common.errors import ModelError
from common.limits import MAX_NEW_TOKENS

FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class SamplingParams:
    """How to sample a completion; temperature 0 means greedy."""

    temperature: float = field(default=0.7, metadata={"help": "Softmax temperature; 0 = greedy decoding."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus mass kept, in (0, 1]; 1 disables it."})
    max_new_tokens: int = field(default=256, metadata={"help": "Most tokens generated per completion."})

    def __post_init__(self):
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, int | float):
            raise ModelError(f"temperature must be a number, got {self.temperature!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ModelError(f"temperature must be >= 0 and finite, got {self.temperature!r}")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, int | float):
            raise ModelError(f"top_p must be a number, got {self.top_p!r}")
        if not 0 < self.top_p <= 1:
            raise ModelError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise ModelError(f"max_new_tokens must be an integer, got {self.max_new_tokens!r}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise ModelError(
                f"max_new_tokens must be from 1 to {MAX_NEW_TOKENS}, got {self.max_new_tokens!r}"
            )

    @property
    def greedy(self) -> bool:
        """Whether this decodes greedily."""
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, e.g. for `generations.params`."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens}


@dataclass(frozen=True)
class Generation:
    """One completion and what it cost."""

    text: str
    n_tokens: int
    seconds: float
    seed: int
    finish_reason: str


class GumbelSampler:
    """A logits processor: temperature, top-p, then per-row seeded Gumbel noise, so argmax draws a sample.

    Each row owns a torch.Generator seeded with that row's seed and draws exactly one noise vector per step, so a
    row's sample depends only on its own prompt and seed, never on which other rows share the batch (HF's
    `do_sample=True` draws from one global RNG across the whole batch, which couples rows).
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        import torch

        if temperature <= 0:
            raise ModelError(f"GumbelSampler needs temperature > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.generators = []
        for seed in seeds:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(int(seed))
            self.generators.append(generator)

    def __call__(self, input_ids, scores):
        """Return tempered, top-p-masked scores plus Gumbel noise for each row."""
        import torch

        if scores.shape[0] != len(self.generators):
            raise ModelError(
                f"sampler built for {len(self.generators)} rows, got a batch of {scores.shape[0]}"
            )
        logits = scores / self.temperature
        if self.top_p < 1.0:
            logits = top_p_mask(logits, self.top_p)
        vocab = logits.shape[-1]
        # Noise is drawn on the CPU generator in float32 whatever the model dtype, so the same seed gives the same
        # noise on every device and precision.
        noise = torch.stack(
            [
                torch.empty(vocab, dtype=torch.float32).exponential_(generator=generator)
                for generator in self.generators
            ]
        )
        # argmax(logit - log E) with E ~ Exp(1) is a sample from softmax(logit) (Gumbel-max / exponential race);
        # the clamp keeps an exact 0 draw from turning into +inf.
        gumbel = -torch.log(noise.clamp_min(torch.finfo(torch.float32).tiny))
        return logits + gumbel.to(device=logits.device, dtype=logits.dtype)


def nucleus_ids(logits, top_p: float) -> list:
    """Per row, the ids of the smallest most-probable set whose mass reaches `top_p`, most probable first."""
    import torch

    # A token is kept while the tokens ranked above it hold less than top_p, so only the head of the ranking
    # matters; with 49k-token vocabularies a full sort per row and step costs more than the model's forward.
    # Peaked rows close within a top-64 partial sort. For the others, probabilities are binned by binary exponent
    # and the first bin where the mass reaches top_p bounds the nucleus from below: every token under that bound
    # has at least top_p ranked above it, so only the tokens above it are sorted.
    probs = logits.softmax(dim=-1)
    out: list = [None] * probs.shape[0]
    values, ids = probs.topk(min(64, probs.shape[-1]), dim=-1)
    keep = _prefix(values, top_p)
    open_rows = []
    for row in range(probs.shape[0]):
        if keep[row].all() and ids.shape[-1] < probs.shape[-1]:
            open_rows.append(row)
        else:
            out[row] = ids[row, : int(keep[row].sum())]
    if open_rows:
        sub = probs[open_rows]
        exponent = torch.frexp(sub).exponent  # p in [2^(e-1), 2^e); e <= 1
        bins = (1 - exponent.long()).clamp_(0, 200)
        mass = torch.zeros((len(open_rows), 201), dtype=sub.dtype, device=sub.device).scatter_add_(
            1, bins, sub
        )
        first = (mass.cumsum(dim=1) < top_p).sum(dim=1).tolist()
        for j, row in enumerate(open_rows):
            # The lower edge of bin b is 2^(-b); rounding may leave the nucleus open there: then sort everything.
            candidates = (sub[j] >= 2.0 ** -first[j]).nonzero().flatten()
            values, order = sub[j, candidates].sort(descending=True)
            keep = _prefix(values[None], top_p)[0]
            if keep.all() and candidates.numel() < sub.shape[-1]:
                values, candidates = sub[j].sort(descending=True)
                order = torch.arange(values.numel(), device=values.device)
                keep = _prefix(values[None], top_p)[0]
            out[row] = candidates[order[keep]]
    return out


def _prefix(values, top_p: float):
    """For rows of descending probabilities: keep each while the mass before it is below top_p (at least one)."""
    mass_before = values.cumsum(dim=-1) - values
    keep = (mass_before < top_p).int().cumprod(dim=-1).bool()
    keep[..., 0] = True
    return keep


def top_p_mask(logits, top_p: float):
    """Set to -inf every token outside the smallest set whose probability mass reaches `top_p` (keeps >= 1)."""
    import torch

    flat = logits.reshape(-1, logits.shape[-1])
    keep = torch.zeros_like(flat, dtype=torch.bool)
    for row, ids in enumerate(nucleus_ids(flat, top_p)):
        keep[row, ids] = True
    return logits.masked_fill(~keep.reshape(logits.shape), float("-inf"))


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
