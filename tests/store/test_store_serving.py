"""Serving: its fields are the `models` table's columns (the store writes them by name), blanks read as not given."""

from __future__ import annotations

from common.serving import Serving
from store.rows import ModelRow


def test_every_serving_field_is_a_models_column():
    columns = {c.strip() for c in ModelRow.COLUMNS.split(",")}
    assert set(Serving().columns()) <= columns


def test_blanks_read_as_not_given_and_a_row_gives_its_serving_back(store):
    serving = Serving(" http://x/v1 ", "m", "", None, "  r1 ").stripped()
    assert serving == Serving("http://x/v1", "m", revision="r1") and serving.extras
    assert not Serving(endpoint="http://x/v1").extras
    row = store.add_model("served", "", [], "base", serving=serving)
    assert Serving.of(row) == serving
    assert Serving.of(store.add_model("local", "tiny", [], "base")) == Serving()
