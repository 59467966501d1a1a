"""Arena service: default matchup, seeded sides, identity-leak flags, votes mapped to variants."""

from __future__ import annotations

import pytest

from common.context import AppConfig, build_context
from common.errors import UserInputError
from evaluate.arena import ArenaService, Matchup, names_a_model
from evaluate.responses import ResponseParams
from store import NewGeneration


@pytest.fixture
def ctx(tmp_path):
    c = build_context(AppConfig(home=tmp_path / "home"))
    yield c
    c.store.close()


def _seed(store, n=6, leak_at=None):
    cell = ResponseParams().cell()
    sft = store.add_model("sft", "tiny", [], "sft")
    dpo = store.add_model("sft+dpo@1", "tiny", ["a"], "dpo")
    for i in range(n):
        pid = store.add_prompt([{"role": "user", "content": f"incident {i}"}], "t", "heldout")
        store.add_generations(sft.id, [NewGeneration(pid, cell, f"plain answer {i}", {}, 1, 3, 0.1)])
        text = "As a DPO-tuned SmolLM I say" if i == leak_at else f"tuned answer {i}"
        store.add_generations(dpo.id, [NewGeneration(pid, cell, text, {}, 1, 3, 0.1)])


def test_default_matchup_is_sft_vs_newest_dpo(ctx):
    _seed(ctx.store)
    ctx.store.add_model("sft+dpo@7", "tiny", ["b"], "dpo")
    assert ArenaService(ctx).default_matchup() == Matchup("sft", "sft+dpo@7")


def test_votes_map_to_variants_whatever_the_side(ctx):
    _seed(ctx.store, n=12)
    svc = ArenaService(ctx)
    m = svc.default_matchup()
    svc.open(None, m)
    lefts = []
    battle = svc.next_battle("ann", m)
    while battle is not None:
        lefts.append(battle.left_variant)
        assert battle.left_text.startswith("plain" if battle.left_variant == "sft" else "tuned")
        svc.vote("ann", battle, "left" if battle.left_variant == "sft+dpo@1" else "right")
        battle = svc.next_battle("ann", m)
    assert len(lefts) == 12 and set(lefts) == {"sft", "sft+dpo@1"}
    frame = ctx.store.battle_frame()
    winners = [row.left if row.vote == "left" else row.right for row in frame.itertuples()]
    assert winners == ["sft+dpo@1"] * 12
    results = svc.results(m)
    assert (results.win.a, results.win.rate, results.n_votes, results.n_voters) == ("sft+dpo@1", 1.0, 12, 1)
    # Another voter still gets every battle; the same voter none.
    assert svc.next_battle("bob", m) is not None and svc.next_battle("ann", m) is None


def test_identity_leaks_are_flagged(ctx):
    _seed(ctx.store, n=3, leak_at=1)
    svc = ArenaService(ctx)
    m = svc.default_matchup()
    svc.open(None, m)
    flags = {}
    battle = svc.next_battle("ann", m)
    while battle is not None:
        flags[battle.prompt_id] = battle.leak
        svc.vote("ann", battle, "tie")
        battle = svc.next_battle("ann", m)
    assert sorted(flags.values()) == [False, False, True]
    assert names_a_model("I am the sft+dpo@1 model", ("sft", "sft+dpo@1"))
    assert not names_a_model("Severity: SEV2. Roll back the deploy.", ("sft", "sft+dpo@1"))


def test_bad_matchups_are_refused(ctx):
    with pytest.raises(UserInputError):
        Matchup("sft", "sft")
    with pytest.raises(UserInputError):
        ArenaService(ctx).prepare(None, Matchup("sft", "nope"))


def test_leaderboard_appears_once_three_variants_met(ctx):
    _seed(ctx.store, n=4)
    svc = ArenaService(ctx)
    assert svc.leaderboard() is None
    third = ctx.store.add_model("sft+dpo@2", "tiny", ["b"], "dpo")
    cell = ResponseParams().cell()
    for p in ctx.store.list_prompts(split="heldout"):
        ctx.store.add_generations(
            third.id, [NewGeneration(p.id, cell, f"third answer {p.id}", {}, 1, 3, 0.1)]
        )
    for m in (Matchup("sft", "sft+dpo@1"), Matchup("sft", "sft+dpo@2"), Matchup("sft+dpo@1", "sft+dpo@2")):
        svc.open(None, m)
        battle = svc.next_battle("ann", m)
        while battle is not None:
            winner = max(battle.left_variant, battle.right_variant)  # a fixed order: @2 > @1 > sft
            svc.vote("ann", battle, "left" if battle.left_variant == winner else "right")
            battle = svc.next_battle("ann", m)
    assert svc.leaderboard()["variant"].tolist() == ["sft+dpo@2", "sft+dpo@1", "sft"]
