"""The labelling screen order and hidden-suggestion draw are keyed by the install secret: recorded, not predictable."""

from __future__ import annotations

import hashlib
import random

from annotate.labelling import LabelConfig, LabelService
from annotate.suggestions import Suggester
from models.judge import RuleJudge
from store import Store

PAIRS = range(1, 201)


def _home(tmp_path, name: str, key: bytes):
    """A home with a fixed secret file (as the install would have made it), and its store."""
    home = tmp_path / name
    home.mkdir()
    (home / "install.secret").write_bytes(key)
    (home / "install.secret").chmod(0o600)
    return Store.open(home / "preflab.duckdb")


def _public_order(pair_id: int) -> tuple[bool, bool]:
    """What anyone could compute before the fix: (swapped, hidden) from the base seed and the pair id."""
    rng = random.Random(int(hashlib.sha256(f"0:pair:{pair_id}".encode()).hexdigest()[:15], 16))
    return rng.random() < 0.5, rng.random() < 0.5


def test_two_installs_show_pairs_in_different_orders(tmp_path):
    orders = []
    for name, key in (("one", b"1" * 32), ("two", b"2" * 32)):
        with _home(tmp_path, name, key) as store:
            suggester = Suggester(store, RuleJudge(), hide_fraction=0.5)
            orders.append([(suggester.order(p).swapped, suggester.order(p).hide_suggestion) for p in PAIRS])
    assert orders[0] != orders[1]
    differ = sum(a != b for a, b in zip(*orders, strict=True))
    assert differ > len(PAIRS) // 4  # not a stray pair: the orders are unrelated


def test_the_public_formula_no_longer_predicts_the_screen(tmp_path):
    with _home(tmp_path, "one", b"1" * 32) as store:
        suggester = Suggester(store, RuleJudge(), hide_fraction=0.5)
        mine = [(suggester.order(p).swapped, suggester.order(p).hide_suggestion) for p in PAIRS]
    public = [_public_order(p) for p in PAIRS]
    sides = sum(m[0] == p[0] for m, p in zip(mine, public, strict=True)) / len(PAIRS)
    hides = sum(m[1] == p[1] for m, p in zip(mine, public, strict=True)) / len(PAIRS)
    assert 0.35 < sides < 0.65 and 0.35 < hides < 0.65  # a coin flip, not a prediction


def test_the_recorded_seed_is_the_keyed_one_and_the_secret_stays_out_of_the_database(tmp_path):
    key = bytes(range(32))
    store = _home(tmp_path, "one", key)
    model = store.ensure_model("sft", "tiny", [], "sft")
    for i in range(4):
        pid = store.add_prompt([{"role": "user", "content": f"incident {i}"}], "t", "train")
        store.add_pair(
            pid, store.add_generation(pid, model.id, f"a {i}"), store.add_generation(pid, model.id, f"b {i}")
        )
    suggester = Suggester(store, RuleJudge(), hide_fraction=0.0)
    svc = LabelService(store, suggester, LabelConfig())
    for _ in range(4):
        svc.vote("ann", svc.current("ann").pair_id, "A", suggestion_shown=False)
    rows = store.cursor().execute("SELECT pair_id, seed FROM labels").fetchall()
    assert len(rows) == 4 and all(seed == suggester.order(pid).seed for pid, seed in rows)
    store.cursor().execute("CHECKPOINT")
    store.close()
    raw = (tmp_path / "one" / "preflab.duckdb").read_bytes()
    assert key not in raw and key.hex().encode() not in raw
    assert (tmp_path / "one" / "install.secret").stat().st_mode & 0o777 == 0o600


def test_a_fresh_home_gets_a_private_secret(tmp_path):
    home = tmp_path / "fresh"
    with Store.open(home / "preflab.duckdb") as store:
        Suggester(store, RuleJudge()).order(1)
    secret = home / "install.secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 32
