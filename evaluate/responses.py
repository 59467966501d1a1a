"""One response per (variant, prompt, sampling params), generated once and cached in `generations`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from errors import UserInputError
from limits import MAX_BATCH_SIZE, MAX_NEW_TOKENS, check_int_range

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResponseParams:
    """How arena and eval responses are sampled (the same for every variant, so the comparison is fair)."""

    temperature: float = field(default=0.7, metadata={"help": "0 = greedy"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus mass"})
    max_new_tokens: int = field(default=256, metadata={"help": "longest response"})
    seed: int = field(default=0, metadata={"help": "recorded base seed; per-prompt seeds derive from it"})
    batch_size: int = field(default=16, metadata={"help": "prompts per forward batch"})

    def __post_init__(self):
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise UserInputError(f"bad response params: {self}")
        check_int_range("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        check_int_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)

    def cell(self) -> str:
        """The generations.cell key: the same key means the cached response is reused."""
        return f"eval:t{self.temperature:g}:p{self.top_p:g}:n{self.max_new_tokens}:s{self.seed}"


def ensure_responses(
    store,
    pool,
    variant: str,
    prompts: list,
    params: ResponseParams,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[int, int]:
    """prompt_id -> generation id of `variant`'s response, generating only the missing ones."""
    from annotate.generation import cell_seed
    from models.local import SamplingParams
    from store import NewGeneration

    row = store.get_model(variant)
    if row is None:
        raise UserInputError(f"no variant named {variant!r}")
    key = params.cell()
    done = store.done_cells(row.id, [p.id for p in prompts])
    have = {pid: gid for (pid, cell), gid in done.items() if cell == key}
    todo = [p for p in prompts if p.id not in have]
    if progress:
        progress(len(have), len(prompts))
    if not todo:
        return have
    model = pool.get(variant)
    if row.fingerprint != model.fingerprint:
        store.set_model_fingerprint(variant, model.fingerprint)
    sampling = SamplingParams(params.temperature, params.top_p, params.max_new_tokens)
    for start in range(0, len(todo), params.batch_size):
        if should_stop():
            break
        chunk = todo[start : start + params.batch_size]
        seeds = [cell_seed(params.seed, p.content_hash, key) for p in chunk]
        outs = model.generate(
            [p.messages for p in chunk], sampling, seeds=seeds, batch_size=params.batch_size
        )
        ids = store.add_generations(
            row.id,
            [
                NewGeneration(
                    p.id,
                    key,
                    o.text,
                    {**sampling.to_dict(), "purpose": "eval"},
                    o.seed,
                    o.n_tokens,
                    o.seconds,
                )
                for p, o in zip(chunk, outs, strict=True)
            ],
        )
        have.update({p.id: g for p, g in zip(chunk, ids, strict=True)})
        if progress:
            progress(len(have), len(prompts))
    return have
