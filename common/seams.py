"""The seams between services and what they drive: model sources, judges and the job runner, as Protocols.

Each Protocol holds exactly what the services call, no more: the real classes (models/, annotate/jobs.py) and
every test fake that stands in for one satisfy it structurally, and tests/common/test_seams_types.py runs a
pinned mypy over them, so a fake cannot drift from the class it replaces. Members the services only probe with
`getattr` (a pool's `where`/`plan`/`release_device`, a judge's `applies`/`abstain_reason`, an endpoint client's
`close`...) are optional and stay out. The model types are imported for the type checker only: importing this
module loads no model, job or database code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from annotate.jobs import JobHandle
    from models.endpoint import BatchOutcome, Endpoint, ServedGeneration
    from models.judge_types import BatchItem, PairVerdict
    from models.sampling import Generation, SamplingParams
    from models.variants import Variant

Messages = list[dict[str, Any]]
Progress = Callable[[int, int], None]
# The arguments callers pass by position are positional-only here (`/`): an implementation may name them freely.


# --- model sources ------------------------------------------------------------------------------------------


class LoadedModel(Protocol):
    """A loaded variant as generation and eval responses use it (annotate/generation.py, evaluate/responses.py)."""

    @property
    def fingerprint(self) -> str:
        """What generated: stored on the variant's row before its responses."""
        ...

    def generate(
        self,
        prompts: list[Messages],
        params: SamplingParams | list[SamplingParams],
        /,
        *,
        batch_size: int,
        seeds: list[int],
        progress: Progress | None = None,
    ) -> Sequence[Generation]:
        """One completion per chat, in order; each depends only on its own chat, params and seed."""
        ...


class ScoringModel(Protocol):
    """A loaded variant as reference scoring uses it (train/refcache.py)."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def tokenizer(self) -> Any:
        """Its chat template is part of the reference cache key."""
        ...

    def score(
        self,
        prompts: list[Messages],
        responses: list[str],
        /,
        *,
        batch_size: int = 8,
        max_length: int | None = ...,
        truncation_mode: str = ...,
    ) -> list[float]:
        """Summed log-prob of each response after its prompt."""
        ...


class ModelSource(Protocol):
    """`Context.generator`: variant name -> its loaded model (the real one is models.pool.ModelPool)."""

    def get(self, name: str, /) -> LoadedModel: ...


class ModelLoader(Protocol):
    """What a ModelPool calls to load a variant (models.local.load_variant, or a test's loader)."""

    def __call__(self, variant: Variant, /, *, cache_dir: Path, dtype: Any = None) -> LoadedModel: ...


class EndpointClient(Protocol):
    """A variant served by an inference server, as generation and eval responses use it."""

    def generate(
        self,
        chats: Sequence[Messages],
        params: SamplingParams | Sequence[SamplingParams],
        /,
        *,
        seeds: Sequence[int],
        progress: Progress | None = None,
        should_stop: Callable[[], bool] = ...,
        on_result: Callable[[int, ServedGeneration], None] | None = None,
    ) -> BatchOutcome:
        """One request per chat; `on_result` stores each response as it lands."""
        ...


class EndpointFactory(Protocol):
    """Builds the client of an endpoint (models.endpoint.make_endpoint_model; tests pass fakes)."""

    def __call__(self, endpoint: Endpoint, /, *, concurrency: int) -> EndpointClient: ...


# --- judges -------------------------------------------------------------------------------------------------


class Judge(Protocol):
    """`Context.judge`: judges a pair in both screen orders (models.judge.RuleJudge, AnthropicJudge)."""

    @property
    def name(self) -> str:
        """'rule' or 'anthropic': part of the verdict's key and of the judge's annotator name."""
        ...

    @property
    def model(self) -> str | None: ...

    @property
    def rubric_hash(self) -> str: ...

    @property
    def label(self) -> str:
        """How the UI and the CLI name it, e.g. 'rule-based judge'."""
        ...

    def judge_pair(self, prompt: Messages, a: str, b: str, /, *, gold: dict | None = None) -> PairVerdict: ...


class BatchJudge(Judge, Protocol):
    """A judge that also answers through Message Batches (`launch.py judge --batch`, annotate/judging.py)."""

    def run_batch(
        self,
        items: list[BatchItem],
        /,
        *,
        poll_interval: float,
        progress: Progress | None = None,
        on_submit: Callable[[str], None] | None = None,
    ) -> dict[str, PairVerdict]: ...

    def wait_batch(
        self, batch_id: str, /, *, poll_interval: float, progress: Progress | None = None
    ) -> dict[str, PairVerdict]: ...


# --- jobs ---------------------------------------------------------------------------------------------------

JobBody = Callable[["JobHandle"], dict]


class Jobs(Protocol):
    """`Context.jobs`: runs job bodies in the background (annotate.jobs.JobRunner)."""

    def start(
        self, kind: str, params: dict, body: JobBody, /, *, job_id: int | None = None, local: bool = True
    ) -> int:
        """Start `body` as a job of `kind`; its id."""
        ...

    def cancel(self, job_id: int, /) -> bool: ...

    def cancel_latest(self, kind: str, /, *, where: Callable[[Any], bool] | None = None) -> int | None: ...

    def waiting_for(self, job_id: int, /) -> int | None:
        """The job holding the device this one waits for; None when it is not waiting."""
        ...
