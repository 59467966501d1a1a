"""Pair generation: K responses per prompt from a variant, stored cell by cell so a job can resume."""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import UserInputError
from common.flags import setting
from common.limits import MAX_BATCH_SIZE, MAX_ITEMS, MAX_NEW_TOKENS, MAX_PER_PROMPT, check_int_range
from common.vocab import Split, values
from models.endpoint import MAX_CONCURRENCY

log = logging.getLogger(__name__)

STRATEGIES = ("temperatures", "fewshot")


@dataclass(frozen=True)
class GenerateConfig:
    """What `generate` and the #generate button do."""

    variant: str = field(default="sft", metadata={"help": "variant that writes the responses"})
    split: str = setting(Split.TRAIN.value, "prompt split to generate for", choices=values(Split))
    limit: int | None = field(default=None, metadata={"help": "at most this many prompts"})
    per_prompt: int = field(
        default=2, metadata={"help": "K responses per prompt; pairs are (1,2), (3,4), ..."}
    )
    temperatures: tuple[float, ...] = setting((0.7, 1.2), "comma-separated, cycled over the K slots")
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass"})
    max_new_tokens: int = field(default=256, metadata={"help": "longest response"})
    batch_size: int = field(default=16, metadata={"help": "prompts per forward batch"})
    seed: int = field(default=0, metadata={"help": "recorded base seed; each cell's seed derives from it"})
    strategy: str = setting(
        "temperatures", "temperatures, or fewshot: two different few-shot prefixes", choices=STRATEGIES
    )
    near_identical: float = field(
        default=0.9, metadata={"help": "similarity at or above which a pair is dropped"}
    )
    concurrency: int = field(
        default=8, metadata={"help": "requests in flight at once for a variant served by an endpoint"}
    )

    def __post_init__(self):
        if self.per_prompt < 2 or self.per_prompt % 2:
            raise UserInputError(f"--per-prompt must be an even number >= 2, got {self.per_prompt}")
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise UserInputError(f"--temperatures must be non-negative numbers, got {self.temperatures}")
        if not 0 < self.top_p <= 1:
            raise UserInputError(f"--top-p must be in (0, 1], got {self.top_p}")
        check_int_range("--per-prompt", self.per_prompt, 2, MAX_PER_PROMPT)
        check_int_range("--max-new-tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        check_int_range("--batch-size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_int_range("--concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        if self.limit is not None:
            check_int_range("--limit", self.limit, 1, MAX_ITEMS)
        if self.strategy not in STRATEGIES:
            raise UserInputError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.split not in values(Split):
            raise UserInputError(f"split must be train or heldout, got {self.split!r}")

    @classmethod
    def demo(cls, **overrides) -> GenerateConfig:
        """K=4 (two pairs per prompt) so the demo reaches 500+ triples from 250+ prompts."""
        return cls(**{"per_prompt": 4, **overrides})

    @classmethod
    def from_values(cls, preset: str = "default", **given) -> GenerateConfig:
        """Settings from plain values, None meaning "not given": the `generate` flags and the Generate pairs form
        both build theirs here; the demo preset asks for K=4 unless K is given."""
        given = {k: v for k, v in given.items() if v is not None}
        return cls.demo(**given) if preset == "demo" else cls(**given)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Cell:
    """One response slot of a prompt: its sampling setting and a key that names it in the database."""

    slot: int
    temperature: float
    prefix: int | None  # index of the few-shot prefix, for the fewshot strategy

    def key(self, cfg: GenerateConfig) -> str:
        prefix = "" if self.prefix is None else f":fs{self.prefix}"
        return f"k{self.slot}:t{self.temperature:g}:p{cfg.top_p:g}:n{cfg.max_new_tokens}:s{cfg.seed}{prefix}"


def plan_cells(cfg: GenerateConfig) -> list[Cell]:
    """The K cells of every prompt."""
    if cfg.strategy == "fewshot":
        return [Cell(k, cfg.temperatures[0], k % 2) for k in range(cfg.per_prompt)]
    return [Cell(k, cfg.temperatures[k % len(cfg.temperatures)], None) for k in range(cfg.per_prompt)]


def cell_seed(base_seed: int, content_hash: str, cell_key: str) -> int:
    """A seed that depends only on the prompt and the cell, so a resumed job samples the same thing."""
    digest = hashlib.sha256(f"{base_seed}:{content_hash}:{cell_key}".encode()).hexdigest()
    return int(digest[:15], 16)


def near_identical(a: str, b: str, threshold: float) -> bool:
    """Same text up to case and whitespace, or a character-level similarity at or above the threshold."""
    na, nb = (re.sub(r"\s+", " ", t).strip().lower() for t in (a, b))
    if na == nb:
        return True
    return difflib.SequenceMatcher(None, na, nb, autojunk=False).ratio() >= threshold


def fewshot_prefixes(examples: list[tuple[list[dict], str]]) -> list[list[dict]]:
    """Two different one-shot prefixes (a worked example as earlier turns) from prompts with gold answers."""
    if len(examples) < 2:
        raise UserInputError("the fewshot strategy needs at least two prompts with gold answers")
    return [
        [*examples[i][0], {"role": "assistant", "content": examples[i][1]}] for i in (0, len(examples) // 2)
    ]


@dataclass
class GenerateResult:
    """What a generation run did."""

    generated: int = 0  # responses written by this run
    reused: int = 0  # cells stored before it (a resumed job), not generated again
    tokens: int = 0  # tokens of the new responses
    seconds: float = 0.0  # time spent generating them
    pairs: int = 0  # new pairs offered for labelling
    near_identical: int = 0  # pairs not offered: their two responses nearly the same

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**self.__dict__, "tokens_per_second": round(self.tokens_per_second, 2)}

    @classmethod
    def from_dict(cls, values: dict) -> GenerateResult:
        """A result `to_dict` wrote (a job's stored result), its derived rate dropped."""
        return cls(**{k: v for k, v in values.items() if k != "tokens_per_second"})

    def summary(self) -> str:
        return (
            f"generated {self.generated} responses ({self.reused} already stored), "
            f"{self.tokens_per_second:.1f} tok/s; {self.pairs} new pairs, "
            f"{self.near_identical} near-identical pairs not offered"
        )


def run_generation(
    store,
    pool,
    cfg: GenerateConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    endpoints: Callable[..., object] | None = None,
) -> GenerateResult:
    """Generate the missing cells in prompt groups, committing each group and its pairs before the next.

    A variant with an endpoint generates there (one request per cell, each stored as it lands), even when it
    also has local weights; `endpoints(endpoint, concurrency=...)` builds its client (tests pass fakes).
    """
    from annotate.models_service import endpoint_of
    from models.sampling import SamplingParams
    from store import NewGeneration

    row = store.get_model(cfg.variant)
    if row is None:
        raise UserInputError(
            f"no variant named {cfg.variant!r}: train one with `launch.py sft` or register it with "
            f"`launch.py models add {cfg.variant} --base ... --adapter ...`"
        )
    prompts = store.list_prompts(split=cfg.split, limit=cfg.limit)
    if not prompts:
        raise UserInputError(f"no {cfg.split} prompts: import some first (`launch.py import FILE`)")
    served = endpoint_of(row)
    if served is not None:
        from models.endpoint import make_endpoint_model

        model = (endpoints or make_endpoint_model)(served, concurrency=cfg.concurrency)
        if not row.local and row.fingerprint != served.identity:
            # No local weights to fingerprint: the served id (and revision) names what generated.
            store.set_model_fingerprint(cfg.variant, served.identity)
    else:
        model = pool.get(cfg.variant)
        if row.fingerprint != model.fingerprint:
            store.set_model_fingerprint(cfg.variant, model.fingerprint)
    cells = plan_cells(cfg)
    prefixes = None
    if cfg.strategy == "fewshot":
        with_gold = [
            (p.messages, _gold_answer(p.gold)) for p in store.list_prompts(split=Split.TRAIN) if p.gold
        ]
        prefixes = fewshot_prefixes([(m, a) for m, a in with_gold if a])

    check = getattr(model, "check_context", None)
    if check is not None:
        # Before anything is generated: a prompt that cannot fit would otherwise fail the job half-way.
        chats = [prefix + p.messages for prefix in (prefixes or [[]]) for p in prompts]
        check(chats, cfg.max_new_tokens)
    done = store.done_cells(row.id, [p.id for p in prompts])
    total = len(prompts) * len(cells)
    result = GenerateResult(reused=len(done))
    finished = len(done)
    if progress:
        progress(finished, total)
    if served is not None:
        try:
            _generate_served(
                store,
                model,
                served,
                row.id,
                cfg,
                cells,
                prompts,
                prefixes,
                done,
                result,
                progress,
                should_stop,
            )
        finally:
            getattr(model, "close", lambda: None)()  # the HTTP connection pool of this job
        log.info(result.summary())
        return result
    for start in range(0, len(prompts), cfg.batch_size):
        if should_stop():
            break
        group = prompts[start : start + cfg.batch_size]
        # Every missing cell of the group in one call: a prompt's K responses share one prompt forward, and
        # the generator keeps its batch full as rows finish. The group is committed in one transaction.
        todo = [(p, cell) for p in group for cell in cells if (p.id, cell.key(cfg)) not in done]
        if todo:
            params = [SamplingParams(cell.temperature, cfg.top_p, cfg.max_new_tokens) for _, cell in todo]
            seeds = [cell_seed(cfg.seed, p.content_hash, cell.key(cfg)) for p, cell in todo]
            chats = [(prefixes[cell.prefix] if prefixes else []) + p.messages for p, cell in todo]
            # Progress inside the call, counted on from the cells already finished.
            within = (lambda n, _total, base=finished: progress(base + n, total)) if progress else None
            began = time.perf_counter()
            outs = model.generate(chats, params, seeds=seeds, batch_size=cfg.batch_size, progress=within)
            result.seconds += time.perf_counter() - began
            stored = store.add_generations(
                row.id,
                [
                    NewGeneration(
                        p.id,
                        cell.key(cfg),
                        o.text,
                        {**sp.to_dict(), "slot": cell.slot, "strategy": cfg.strategy, "prefix": cell.prefix},
                        o.seed,
                        o.n_tokens,
                        o.seconds,
                    )
                    for (p, cell), sp, o in zip(todo, params, outs, strict=True)
                ],
            )
            for (p, cell), gen_id in zip(todo, stored, strict=True):
                done[(p.id, cell.key(cfg))] = gen_id
            result.generated += len(outs)
            result.tokens += sum(o.n_tokens for o in outs)
            finished += len(outs)
            if progress:
                progress(finished, total)
        _pair_group(store, cfg, cells, group, done, result)
    log.info(result.summary())
    return result


def _generate_served(
    store, model, served, model_id: int, cfg, cells, prompts, prefixes, done, result, progress, should_stop
) -> None:
    """Endpoint generation: each cell a request and a row as it lands; pairs per group; a failure stops it."""
    from models.sampling import SamplingParams
    from store import NewGeneration

    total = len(prompts) * len(cells)
    finished = len(done)
    for start in range(0, len(prompts), cfg.batch_size):
        if should_stop():
            break
        group = prompts[start : start + cfg.batch_size]
        todo = [(p, cell) for p in group for cell in cells if (p.id, cell.key(cfg)) not in done]
        error = None
        if todo:
            params = [SamplingParams(cell.temperature, cfg.top_p, cfg.max_new_tokens) for _, cell in todo]
            seeds = [cell_seed(cfg.seed, p.content_hash, cell.key(cfg)) for p, cell in todo]
            chats = [(prefixes[cell.prefix] if prefixes else []) + p.messages for p, cell in todo]

            def keep(i: int, out, todo=todo, params=params) -> None:
                (p, cell), sp = todo[i], params[i]
                fields = {"slot": cell.slot, "strategy": cfg.strategy, "prefix": cell.prefix}
                [gen_id] = store.add_generations(
                    model_id,
                    [
                        NewGeneration(
                            p.id,
                            cell.key(cfg),
                            out.text,
                            {**sp.to_dict(), **fields, **served_params(served, out)},
                            out.seed,
                            out.n_tokens,
                            out.seconds,
                        )
                    ],
                )
                done[(p.id, cell.key(cfg))] = gen_id
                result.generated += 1
                result.tokens += out.n_tokens

            within = (lambda n, _total, base=finished: progress(base + n, total)) if progress else None
            began = time.perf_counter()
            outcome = model.generate(
                chats, params, seeds=seeds, progress=within, should_stop=should_stop, on_result=keep
            )
            result.seconds += time.perf_counter() - began
            finished += outcome.done
            error = outcome.error
        _pair_group(store, cfg, cells, group, done, result)
        if error is not None:
            # What landed is stored and paired; the same job resumes from the next missing cell.
            log.warning("%s (%s)", error, result.summary())
            raise error


def served_params(served, out) -> dict:
    """What the server reported, next to the sampling params: model id, tokens, finish reason, latency."""
    extra = {"via": "endpoint", **out.params()}
    if served.revision:
        extra["revision"] = served.revision
    if served.lora_module:
        extra["lora_module"] = served.lora_module
    return extra


def _gold_answer(gold) -> str | None:
    if isinstance(gold, dict):
        return gold.get("answer")
    return gold if isinstance(gold, str) else None


def _pair_group(
    store, cfg: GenerateConfig, cells: list[Cell], group, done: dict, result: GenerateResult
) -> None:
    """Pair slots (0,1), (2,3), ... of each prompt whose both cells exist, unless near-identical."""
    for p in group:
        for i in range(0, len(cells) - 1, 2):
            a = done.get((p.id, cells[i].key(cfg)))
            b = done.get((p.id, cells[i + 1].key(cfg)))
            if a is None or b is None:
                continue
            texts = store.generation_texts([a, b])
            if near_identical(texts[a], texts[b], cfg.near_identical):
                result.near_identical += 1
                continue
            if store.add_pair_if_new(p.id, a, b) is not None:
                result.pairs += 1
