"""Fixtures for the store tests: a fresh database file and a private copy of the migrations."""

import shutil
from pathlib import Path

import pytest

from store import Store
from store.migrate import MIGRATIONS_DIR


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # A nested folder that does not exist yet: Store.open must create it.
    return tmp_path / "home" / "nested" / "preflab.duckdb"


@pytest.fixture
def store(db_path: Path):
    with Store.open(db_path) as s:
        yield s


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """A copy of the first shipped migration that a test may edit and add numbers after."""
    target = tmp_path / "migrations"
    target.mkdir()
    shutil.copy(MIGRATIONS_DIR / "0001_initial.sql", target)
    return target


def _make_pair(store: Store, prompt: str, text_a: str = "answer A", text_b: str = "answer B") -> int:
    """A prompt with two responses from one model, paired; returns the pair id."""
    model = store.ensure_model("sft", "tiny-base", ["sft-adapter"], "sft")
    prompt_id = store.add_prompt([{"role": "user", "content": prompt}], "test", "train")
    assert prompt_id is not None
    gen_a = store.add_generation(prompt_id, model.id, text_a, params={"temperature": 0.7}, seed=1)
    gen_b = store.add_generation(prompt_id, model.id, text_b, params={"temperature": 1.2}, seed=2)
    return store.add_pair(prompt_id, gen_a, gen_b)


@pytest.fixture
def make_pair():
    """`make_pair(store, prompt, text_a, text_b) -> pair_id`."""
    return _make_pair
