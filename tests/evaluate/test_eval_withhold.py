"""The Eval sample viewer withholds responses an open arena shows blind; running an eval needs the admin role."""

from __future__ import annotations

import pytest

from common.access import Access, Role, User
from common.context import AppConfig, build_context
from common.errors import PermissionDeniedError
from evaluate.arena import ArenaService, Matchup
from evaluate.eval_service import EvalRequest, sample, start_eval_job
from evaluate.responses import ResponseParams
from store import NewGeneration

M = Matchup("sft", "sft+dpo@1")
VARIANTS = ["base", "sft", "sft+dpo@1"]


@pytest.fixture
def ctx(tmp_path):
    c = build_context(AppConfig(home=tmp_path / "home"))
    yield c
    c.store.close()


def _eval_run(store) -> tuple[int, int, int]:
    """An eval of three variants on one held-out and one train prompt, sharing the arena's cell."""
    cell = ResponseParams().cell()
    models = {
        name: store.get_model(name) or store.add_model(name, "tiny", [name], "sft") for name in VARIANTS
    }
    prompts = {
        split: store.add_prompt([{"role": "user", "content": f"{split} incident"}], "t", split)
        for split in ("heldout", "train")
    }
    rows = []
    for split, pid in prompts.items():
        for name, m in models.items():
            store.add_generations(m.id, [NewGeneration(pid, cell, f"{name} says {split}", {}, 1, 3, 0.1)])
            rows.append((pid, m.id, "length in words (heuristic)", 3.0))
    config = {"cell": cell, "model_ids": {n: m.id for n, m in models.items()}, "n_prompts": 2}
    run_id = store.add_eval_run(VARIANTS, "heldout", config, rows)
    return run_id, prompts["heldout"], prompts["train"]


def test_the_viewer_withholds_what_an_open_arena_shows(ctx):
    run_id, heldout, train = _eval_run(ctx.store)
    before = sample(ctx.store, run_id, heldout)
    assert before["outputs"]["sft"] == "sft says heldout" and before["withheld"] == {}

    svc = ArenaService(ctx)
    svc.open(None, M)
    battle = svc.next_battle("ann", M)
    arena_texts = {battle.left_text, battle.right_text}
    assert arena_texts == {"sft says heldout", "sft+dpo@1 says heldout"}  # the very texts the viewer had

    during = sample(ctx.store, run_id, heldout)
    shown = set(during["outputs"].values())
    assert not shown & arena_texts, "the viewer names the arena's blind responses"
    assert set(during["withheld"]) == {"sft", "sft+dpo@1"}
    assert all("arena" in why and "open" in why for why in during["withheld"].values())
    assert set(during["scores"]) == {"base"}  # per-prompt scores (a length) would name them too
    assert during["outputs"]["base"] == "base says heldout"  # not in the arena: shown
    # The arena serves held-out prompts only: the train prompt's responses are not its texts.
    assert sample(ctx.store, run_id, train)["outputs"]["sft"] == "sft says train"

    svc.close(None, M)
    after = sample(ctx.store, run_id, heldout)
    assert after["outputs"]["sft"] == "sft says heldout" and after["withheld"] == {}


def test_running_an_eval_needs_the_admin_role(ctx):
    ctx.access = Access((User("alice", "pw", Role.ANNOTATOR),))
    with pytest.raises(PermissionDeniedError, match="admin"):
        start_eval_job(ctx, EvalRequest(variants=("base", "sft")), username="alice")
    with pytest.raises(PermissionDeniedError):
        start_eval_job(ctx, EvalRequest(variants=("base", "sft")), username=None)
