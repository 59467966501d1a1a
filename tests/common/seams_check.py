"""Type-checked, never run: every real class and every test fake assigned to the seam it stands for.

tests/common/test_seams_types.py runs mypy over this module; an assignment that fails means a fake (or a real
class) no longer has what the services call on it (common/seams.py). Nothing here executes: the functions are
only read by the type checker.
"""

from __future__ import annotations

from typing import Any

from annotate.jobs import JobRunner
from common.seams import (
    BatchJudge,
    EndpointClient,
    EndpointFactory,
    Jobs,
    Judge,
    LoadedModel,
    ModelLoader,
    ModelSource,
    ScoringModel,
)
from models.endpoint import Endpoint, EndpointModel, make_endpoint_model
from models.judge import AnthropicJudge, RuleJudge, make_judge
from models.local import LocalModel, load_variant
from models.pool import ModelPool
from store import Store
from tests.annotate.conftest import CountingLoader
from tests.annotate.test_stats_judging import FakeBatchJudge
from tests.evaluate.test_eval_support import GoldModel, VariantLoader
from tests.models.fake_openai import FakeServer
from tests.robustness.test_xss_tabs import NamedTinyLoader


def real_classes(local: LocalModel, pool: ModelPool, store: Store, endpoint: Endpoint, client: Any) -> None:
    """What the services get in production."""
    source: ModelSource = pool
    generating: LoadedModel = local
    scoring: ScoringModel = local
    loader: ModelLoader = load_variant
    served: EndpointClient = EndpointModel(endpoint)
    factory: EndpointFactory = make_endpoint_model
    rule: Judge = RuleJudge()
    claude: BatchJudge = AnthropicJudge(client)
    either: Judge = make_judge("auto")
    jobs: Jobs = JobRunner(store)
    del source, generating, scoring, loader, served, factory, rule, claude, either, jobs


def fakes(local: LocalModel, tokenizer_dir: str) -> None:
    """What the tests put in their place."""
    gold: LoadedModel = GoldModel()
    variants: ModelLoader = VariantLoader(tokenizer_dir)
    counting: ModelLoader = CountingLoader(local)
    named: ModelLoader = NamedTinyLoader(tokenizer_dir)
    server: EndpointFactory = FakeServer().client
    batch: BatchJudge = FakeBatchJudge()
    del gold, variants, counting, named, server, batch
