"""The arena stays blind and counts each vote once: keyed sides, one identity, repeat votes refused, roles."""

from __future__ import annotations

import hashlib
import random
import threading

import pytest

from common.access import Access, Role, User
from common.context import AppConfig, build_context
from common.errors import PermissionDeniedError, UserInputError
from evaluate.arena import ArenaService, Battle, Matchup
from evaluate.responses import ResponseParams
from store import NewGeneration

M = Matchup("sft", "sft+dpo@1")
TEAM = Access(
    (
        User("alice", "pw-a", Role.ANNOTATOR),
        User("bob", "pw-b", Role.ANNOTATOR),
        User("root", "pw-r", Role.ADMIN),
    )
)


def _ctx(tmp_path, name="home", key: bytes | None = None, n=6):
    """A context over a fresh home (with a fixed install secret when `key` is given) and `n` prepared battles."""
    home = tmp_path / name
    if key is not None:
        home.mkdir(parents=True)
        (home / "install.secret").write_bytes(key)
        (home / "install.secret").chmod(0o600)
    ctx = build_context(AppConfig(home=home))
    cell = ResponseParams().cell()
    sft = ctx.store.add_model("sft", "tiny", [], "sft")
    dpo = ctx.store.add_model("sft+dpo@1", "tiny", ["a"], "dpo")
    for i in range(n):
        pid = ctx.store.add_prompt([{"role": "user", "content": f"incident {i}"}], "t", "heldout")
        ctx.store.add_generations(sft.id, [NewGeneration(pid, cell, f"plain answer {i}", {}, 1, 3, 0.1)])
        ctx.store.add_generations(dpo.id, [NewGeneration(pid, cell, f"tuned answer {i}", {}, 1, 3, 0.1)])
    ArenaService(ctx).open(None, M)
    return ctx


@pytest.fixture
def ctx(tmp_path):
    c = _ctx(tmp_path)
    yield c
    c.store.close()


def _public_left(voter: str, prompt_id: int) -> str:
    """The left variant as anyone could compute it before the vote with the old, unkeyed formula."""
    seed = int(hashlib.sha256(f"0:{voter}:{prompt_id}:{M.a}:{M.b}".encode()).hexdigest()[:15], 16)
    return M.a if random.Random(seed).random() < 0.5 else M.b


def _sides(ctx, voter="ann") -> dict[int, str]:
    """prompt_id -> left variant for every battle this voter is served (voting tie to move on)."""
    svc, out = ArenaService(ctx), {}
    battle = svc.next_battle(voter, M)
    while battle is not None:
        out[battle.prompt_id] = battle.left_variant
        svc.vote(voter, battle, "tie")
        battle = svc.next_battle(voter, M)
    return out


def test_the_public_formula_no_longer_predicts_the_left_variant(tmp_path):
    ctx = _ctx(tmp_path, key=b"s" * 32, n=40)
    sides = _sides(ctx)
    assert len(sides) == 40
    hits = sum(left == _public_left("ann", pid) for pid, left in sides.items())
    assert 8 <= hits <= 32, f"the public formula predicted {hits} of 40 left variants"
    # The recorded seed is the keyed one, and the secret itself is nowhere in the database.
    seeds = ctx.store.cursor().execute("SELECT seed FROM battles").fetchall()
    assert len({s for (s,) in seeds}) == 40
    ctx.store.cursor().execute("CHECKPOINT")
    ctx.store.close()
    raw = (tmp_path / "home" / "preflab.duckdb").read_bytes()
    assert b"s" * 32 not in raw and (b"s" * 32).hex().encode() not in raw
    assert (tmp_path / "home" / "install.secret").stat().st_mode & 0o777 == 0o600


def test_two_installs_draw_different_sides(tmp_path):
    one = _ctx(tmp_path, "one", key=b"1" * 32, n=24)
    two = _ctx(tmp_path, "two", key=b"2" * 32, n=24)
    try:
        a, b = _sides(one), _sides(two)
    finally:
        one.store.close()
        two.store.close()
    assert len(a) == len(b) == 24
    assert [a[p] for p in sorted(a)] != [b[p] for p in sorted(b)]


def test_a_fresh_home_makes_its_own_private_secret(ctx):
    secret = ctx.cfg.paths.secret
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 32


def test_a_repeat_vote_is_refused_and_counted_once(ctx):
    svc = ArenaService(ctx)
    battle = svc.next_battle("ann", M)
    receipt = svc.vote("ann", battle, "left")
    assert (receipt.vote, receipt.picked) == ("left", battle.left_variant)
    with pytest.raises(UserInputError, match="already voted on this battle") as info:
        svc.vote("ann", battle, "right")
    assert "\n" not in str(info.value)
    # The same battle with its sides the other way round is the same battle.
    flipped = Battle(
        battle.prompt_id,
        battle.prompt,
        battle.right_text,
        battle.left_text,
        battle.right_gen,
        battle.left_gen,
        battle.seed,
        battle.right_variant,
        battle.left_variant,
        battle.leak,
        battle.matchup,
    )
    with pytest.raises(UserInputError, match="already voted"):
        svc.vote("ann", flipped, "left")
    frame = ctx.store.battle_frame()
    assert len(frame) == 1 and frame["vote"].tolist() == ["left"]
    assert (svc.results(M).n_votes, svc.results(M).n_voters) == (1, 1)
    # Another voter still votes on it.
    svc.vote("bob", battle, "tie")
    assert len(ctx.store.battle_frame()) == 2


def test_concurrent_repeat_votes_store_one(ctx):
    svc = ArenaService(ctx)
    # Every (voter, battle) voted twice at once from two threads, as two tabs of one voter would.
    battles = [
        (voter, _battle_for(svc, voter, p.id))
        for voter in ("ann", "bob", "cy")
        for p in ctx.store.list_prompts(split="heldout")
    ]
    refused = []

    def vote_all(start: threading.Barrier):
        for voter, battle in battles:
            start.wait()
            try:
                svc.vote(voter, battle, "left")
            except UserInputError:
                refused.append((voter, battle.prompt_id))

    start = threading.Barrier(2)
    threads = [threading.Thread(target=vote_all, args=(start,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    frame = ctx.store.battle_frame()
    assert len(frame) == len(battles) == 18
    assert len(refused) == 18
    assert not frame.duplicated(["voter", "prompt_id"]).any()


def _battle_for(svc: ArenaService, voter: str, prompt_id: int) -> Battle:
    """The battle this voter would be served for a prompt (what two tabs of one voter both hold)."""
    a, b = (svc.store.get_model(n).id for n in (M.a, M.b))
    ready = svc.store.arena_candidates(a, b, svc.params.cell(), [prompt_id])
    _, gen_a, gen_b = ready[0]
    prompt = svc.store.get_prompt(prompt_id)
    return Battle(prompt_id, prompt.messages, "x", "y", gen_a, gen_b, 1, M.a, M.b, False, M)


def test_the_login_is_the_voter_whatever_name_is_typed(ctx):
    ctx.access = TEAM
    svc = ArenaService(ctx)
    battle = svc.next_battle("alice", M, typed="bob")
    svc.vote("alice", battle, "left", typed="bob")
    assert ctx.store.battle_frame()["voter"].tolist() == ["alice"]
    # alice is not served that battle again, whatever she types; bob still is.
    served = _sides_for(svc, "alice", typed="bob")
    assert battle.prompt_id not in served and len(served) == 5
    assert battle.prompt_id in _sides_for(svc, "bob", typed="alice")
    with pytest.raises(UserInputError, match="already voted"):
        svc.vote("alice", battle, "right", typed="someone-else")


def _sides_for(svc, username, *, typed) -> set[int]:
    seen, battle = set(), svc.next_battle(username, M, typed=typed)
    while battle is not None:
        seen.add(battle.prompt_id)
        svc.vote(username, battle, "tie", typed=typed)
        battle = svc.next_battle(username, M, typed=typed)
    return seen


def test_roles_annotators_vote_admins_prepare_and_close(ctx):
    ctx.access = TEAM
    svc = ArenaService(ctx)
    with pytest.raises(PermissionDeniedError):
        svc.next_battle(None, M, typed="alice")  # not logged in
    with pytest.raises(PermissionDeniedError):
        svc.next_battle("mallory", M)  # not a user
    battle = svc.next_battle("alice", M)
    svc.vote("alice", battle, "left")
    for action in (
        lambda: svc.prepare("alice", M),
        lambda: svc.open("alice", M),
        lambda: svc.close("alice", M),
    ):
        with pytest.raises(PermissionDeniedError, match="admin"):
            action()
    assert svc.is_open(M)
    assert svc.close("root", M) is True
    assert not svc.is_open(M)
    svc.open("root", M)
    assert svc.is_open(M) and svc.next_battle("root", M) is not None  # an admin may vote too


def test_a_closed_arena_serves_no_battles_and_refuses_held_ones(ctx):
    svc = ArenaService(ctx)
    held = svc.next_battle("ann", M)
    svc.close(None, M)
    assert svc.next_battle("ann", M) is None
    with pytest.raises(UserInputError, match="closed"):
        svc.vote("ann", held, "left")
    assert ctx.store.battle_frame().empty
    svc.open(None, M)
    assert svc.next_battle("ann", M) is not None


def test_battles_need_an_open_arena(tmp_path):
    ctx = _ctx(tmp_path)
    try:
        svc = ArenaService(ctx)
        other = Matchup("sft", "sft+dpo@1", "train")
        assert svc.next_battle("ann", other) is None  # never prepared
        assert svc.next_battle("ann", M) is not None
    finally:
        ctx.store.close()
