"""While `serve` runs it holds the database, so no CLI command can run: what the tabs tell a new user points to the
page's own actions (Data → Models, the Train tab's demo SFT), never to `launch.py`."""

from __future__ import annotations

import pytest

from common.errors import UserInputError

EMPTY = {"prompts": 0, "pairs": 0, "preference_triples": 0}


def test_empty_states_point_to_the_page_not_the_cli():
    from annotate.data_ui import data_empty_state
    from annotate.ui import annotate_empty_state, variant_note
    from evaluate.ui import arena_empty_state, eval_empty_state
    from train.ui import train_empty_state

    fresh = annotate_empty_state(EMPTY)
    assert "Load the demo prompts" in fresh and "Demo SFT" in fresh and "Models" in fresh
    texts = [
        fresh,
        annotate_empty_state({"prompts": 340, "pairs": 0}),
        annotate_empty_state({"prompts": 340, "pairs": 0}, has_sft=True),
        annotate_empty_state({"prompts": 340, "pairs": 5}, has_sft=True),
        data_empty_state(EMPTY),
        train_empty_state(EMPTY, has_sft=False),
        arena_empty_state(1),
        eval_empty_state(),
        variant_note(None),
    ]
    assert not [t for t in texts if "launch.py" in t]
    # With an sft variant, the tab no longer asks for one.
    assert "Demo SFT" not in annotate_empty_state({"prompts": 340, "pairs": 0}, has_sft=True)


def test_variant_notes_say_what_base_and_endpoint_variants_are_for():
    from annotate.models_service import VariantInfo
    from annotate.ui import variant_note

    def info(name, kind, endpoint=None):
        where = f"endpoint {endpoint} (m)" if endpoint else "this server (loaded on first use)"
        return VariantInfo(name, kind, "b", (), endpoint, "m" if endpoint else None, where)

    assert "baseline" in variant_note(info("base", "base"))
    assert "its server" in variant_note(info("big", "sft", "http://gpu:8000/v1"))
    assert "this server" in variant_note(info("sft", "sft"))
    assert "<b>" not in variant_note(info("<b>x</b>", "sft"))  # a variant name is untrusted text


@pytest.fixture
def service(tmp_path):
    from annotate.jobs import JobRunner
    from annotate.service import AnnotateService
    from common.context import AppConfig, Context
    from models.judge import RuleJudge
    from store import Store

    store = Store.open(tmp_path / "db.duckdb")
    ctx = Context(
        cfg=AppConfig(home=tmp_path / "home"), store=store, judge=RuleJudge(), jobs=JobRunner(store)
    )
    yield AnnotateService(ctx), store
    store.close()


def test_generation_refusals_name_the_ui_action_that_fixes_them(service):
    from annotate.generation import GenerateConfig

    svc, store = service
    store.ensure_model("base", "tiny", [], "base")
    with pytest.raises(UserInputError) as no_prompts:
        svc.start_generation(GenerateConfig(variant="sft"))
    assert "Data tab" in str(no_prompts.value)
    store.add_prompt([{"role": "user", "content": "hello"}], "t", "train")
    with pytest.raises(UserInputError) as no_sft:
        svc.start_generation(GenerateConfig(variant="sft"))
    with pytest.raises(UserInputError) as none_picked:
        svc.start_generation(GenerateConfig(variant=""))
    for exc in (no_sft.value, none_picked.value):
        assert "Train tab" in str(exc) and "Data → Models" in str(exc)
    for exc in (no_prompts.value, no_sft.value, none_picked.value):
        assert "launch.py" not in str(exc)
    assert store.cursor().execute("SELECT count(*) FROM jobs").fetchone()[0] == 0


def test_the_vote_buttons_send_the_vocabulary_the_services_accept():
    from annotate.ui import VOTE_BUTTONS
    from common.vocab import SCREEN_VOTES, Vote, values
    from evaluate.arena_ui import ARENA_BUTTONS

    assert tuple(value for value, *_ in VOTE_BUTTONS) == SCREEN_VOTES
    assert tuple(value for value, *_ in ARENA_BUTTONS) == values(Vote)
