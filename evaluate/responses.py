"""One response per (variant, prompt, sampling params), generated once and cached in `generations`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import UserInputError
from common.limits import MAX_BATCH_SIZE, MAX_NEW_TOKENS, check_int_range
from models.endpoint import MAX_CONCURRENCY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResponseParams:
    """How arena and eval responses are sampled (the same for every variant, so the comparison is fair)."""

    temperature: float = field(default=0.7, metadata={"help": "0 = greedy"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus mass"})
    max_new_tokens: int = field(default=256, metadata={"help": "longest response"})
    seed: int = field(default=0, metadata={"help": "recorded base seed; per-prompt seeds derive from it"})
    batch_size: int = field(default=16, metadata={"help": "prompts per forward batch"})
    concurrency: int = field(default=8, metadata={"help": "requests in flight for an endpoint variant"})

    def __post_init__(self):
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise UserInputError(f"bad response params: {self}")
        check_int_range("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        check_int_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_int_range("concurrency", self.concurrency, 1, MAX_CONCURRENCY)

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
    endpoints: Callable[..., object] | None = None,
) -> dict[int, int]:
    """prompt_id -> generation id of `variant`'s response, generating only the missing ones.

    A variant with an endpoint answers there, one request per prompt, each stored as it lands.
    """
    from annotate.generation import cell_seed
    from annotate.models_service import endpoint_of
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
    sampling = SamplingParams(params.temperature, params.top_p, params.max_new_tokens)
    served = endpoint_of(row)
    if served is not None:
        return _served_responses(
            store, row, served, prompts, todo, have, params, sampling, progress, should_stop, endpoints
        )
    model = pool.get(variant)
    if row.fingerprint != model.fingerprint:
        store.set_model_fingerprint(variant, model.fingerprint)
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


def _served_responses(
    store, row, served, prompts, todo, have, params, sampling, progress, should_stop, endpoints
) -> dict[int, int]:
    """The missing responses from the variant's endpoint; what landed stays stored when one fails."""
    from annotate.generation import cell_seed, served_params
    from models.endpoint import make_endpoint_model
    from store import NewGeneration

    key = params.cell()
    model = (endpoints or make_endpoint_model)(served, concurrency=params.concurrency)
    if not row.local and row.fingerprint != served.identity:
        store.set_model_fingerprint(row.name, served.identity)
    seeds = [cell_seed(params.seed, p.content_hash, key) for p in todo]

    def keep(i: int, out) -> None:
        p = todo[i]
        extra = {**sampling.to_dict(), "purpose": "eval", **served_params(served, out)}
        [gen_id] = store.add_generations(
            row.id, [NewGeneration(p.id, key, out.text, extra, out.seed, out.n_tokens, out.seconds)]
        )
        have[p.id] = gen_id
        if progress:
            progress(len(have), len(prompts))

    try:
        outcome = model.generate(
            [p.messages for p in todo], sampling, seeds=seeds, should_stop=should_stop, on_result=keep
        )
    finally:
        getattr(model, "close", lambda: None)()
    if outcome.error is not None:
        raise outcome.error
    return have
