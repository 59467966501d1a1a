"""The labelling service: sides vs stored decisions, undo, resume, two annotators, hidden suggestions."""

from __future__ import annotations

import threading

import pytest

from annotate.labelling import LabelConfig, LabelService
from annotate.suggestions import Suggester, display_order
from errors import UserInputError
from models.judge import RuleJudge

GOOD = "Severity: SEV1\nSummary: The api is down.\nNext steps:\n- Roll back the deploy.\n- Page the on-call."
BAD = "dunno, maybe restart it"


def _pairs(store, n: int) -> list[int]:
    model = store.ensure_model("sft", "tiny", [], "sft")
    ids = []
    for i in range(n):
        pid = store.add_prompt(
            [{"role": "user", "content": f"incident {i}"}], "t", "train", gold={"severity": "SEV1"}
        )
        a = store.add_generation(pid, model.id, f"{GOOD} #{i}")
        b = store.add_generation(pid, model.id, f"{BAD} #{i}")
        ids.append(store.add_pair(pid, a, b))
    return ids


def _service(store, **cfg) -> LabelService:
    return LabelService(
        store, Suggester(store, RuleJudge(), hide_fraction=cfg.pop("hide_fraction", 0.0)), LabelConfig(**cfg)
    )


def test_vote_by_screen_side_is_stored_against_gen_a_gen_b(store):
    _pairs(store, 12)
    svc = _service(store)
    screen = svc.current("ann")
    seen_swapped = set()
    while screen is not None:
        seen_swapped.add(screen.swapped)
        good_side = "A" if screen.text_left.startswith("Severity") else "B"
        screen = svc.vote("ann", screen.pair_id, good_side, suggestion_shown=True)
    assert seen_swapped == {True, False}  # both screen orders occurred
    triples = store.preference_triples()
    assert len(triples) == 12
    assert all(t.chosen.startswith("Severity") and t.rejected.startswith("dunno") for t in triples)
    # The rule judge prefers the well-formed answer; suggestion is recorded in gen terms (gen_a is GOOD).
    rows = (
        store.cursor()
        .execute("SELECT suggestion, suggestion_shown, left_gen, right_gen, seed FROM labels")
        .fetchall()
    )
    assert all(s == "a" and shown for s, shown, *_ in rows)
    assert all(seed is not None and left != right for _, _, left, right, seed in rows)


def test_suggestion_side_matches_the_screen(store):
    _pairs(store, 10)
    svc = _service(store)
    for _ in range(10):
        screen = svc.current("ann")
        good_side = "A" if screen.text_left.startswith("Severity") else "B"
        assert screen.suggestion_side == good_side
        assert (
            "A is better" in screen.verdict.rationale
            if good_side == "A"
            else "B is better" in screen.verdict.rationale
        )
        svc.vote("ann", screen.pair_id, "tie", suggestion_shown=True)


def test_undo_supersedes_and_shows_the_pair_again(store):
    _pairs(store, 3)
    svc = _service(store)
    first = svc.current("ann")
    second = svc.vote("ann", first.pair_id, "A", suggestion_shown=False)
    assert second.pair_id != first.pair_id
    back = svc.undo("ann")
    assert back.pair_id == first.pair_id
    labels = store.labels_for_pair(first.pair_id)
    assert len(labels) == 1 and labels[0].superseded_by == labels[0].id  # kept, withdrawn
    assert store.preference_triples() == []
    svc.vote("ann", first.pair_id, "B", suggestion_shown=False)
    assert len(store.labels_for_pair(first.pair_id)) == 2
    assert len(store.preference_triples()) == 1
    with pytest.raises(UserInputError):
        _service(store).undo("nobody")


def test_reload_resumes_the_held_pair_and_double_vote_is_ignored(store):
    _pairs(store, 3)
    svc = _service(store)
    first = svc.current("ann")
    assert svc.current("ann").pair_id == first.pair_id  # a page reload
    svc.vote("ann", first.pair_id, "A", suggestion_shown=False)
    svc.vote("ann", first.pair_id, "B", suggestion_shown=False)  # stale second click
    live = [lab for lab in store.labels_for_pair(first.pair_id) if lab.superseded_by is None]
    assert [lab.decision for lab in live] == [store.preference_triples()[0].decision]
    assert len(store.labels_for_pair(first.pair_id)) == 1


def test_two_annotators_never_hold_the_same_pair(store):
    _pairs(store, 40)
    svc = _service(store)
    seen: dict[str, list[int]] = {"ann": [], "bob": []}

    def work(name):
        screen = svc.current(name)
        while screen is not None:
            seen[name].append(screen.pair_id)
            screen = svc.vote(name, screen.pair_id, "A", suggestion_shown=False)

    threads = [threading.Thread(target=work, args=(n,)) for n in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(seen["ann"]) & set(seen["bob"])
    assert len(seen["ann"]) + len(seen["bob"]) == 40
    assert store.counts()["labels"] == 40


def test_overlap_gives_some_pairs_to_both(store):
    _pairs(store, 40)
    svc = _service(store, overlap=0.5)
    done = {"ann": set(), "bob": set()}
    for name in done:
        screen = svc.current(name)
        while screen is not None:
            done[name].add(screen.pair_id)
            screen = svc.vote(name, screen.pair_id, "A", suggestion_shown=False)
    both = done["ann"] & done["bob"]
    assert 5 <= len(both) <= 35 and done["ann"] | done["bob"] == set(range(1, 41))


def test_abandoned_assignment_returns_to_the_queue(store):
    _pairs(store, 1)
    svc = _service(store, assignment_timeout_s=0.05)
    held = svc.current("ann")
    import time

    time.sleep(0.1)
    assert svc.current("bob").pair_id == held.pair_id
    assert _service(store).current("carol") is None  # bob now holds the only pair


def test_hide_fraction_draw_is_seeded_and_near_the_rate():
    key = b"k" * 32
    hidden = [display_order(0, pid, 0.1, secret=key).hide_suggestion for pid in range(2000)]
    assert 0.07 < sum(hidden) / 2000 < 0.13
    assert hidden == [display_order(0, pid, 0.1, secret=key).hide_suggestion for pid in range(2000)]
    swapped = [display_order(0, pid, 0.1, secret=key).swapped for pid in range(2000)]
    assert 0.45 < sum(swapped) / 2000 < 0.55


def test_edit_and_note_are_stored_and_edit_needs_a_winner(store):
    _pairs(store, 2)
    svc = _service(store)
    screen = svc.current("ann")
    with pytest.raises(UserInputError):
        svc.vote("ann", screen.pair_id, "tie", suggestion_shown=False, chosen_edit="better text")
    svc.vote(
        "ann", screen.pair_id, "A", suggestion_shown=False, chosen_edit="Severity: SEV1 (edited)", note="n"
    )
    triple = store.preference_triples()[0]
    assert triple.chosen == "Severity: SEV1 (edited)" and triple.edited
    assert triple.rejected == (screen.text_right)


def test_bad_annotator_names_are_refused(store):
    svc = _service(store)
    for name in ["", "a b", "<script>", "x" * 65]:
        with pytest.raises(UserInputError):
            svc.current(name)


def test_a_suggestion_withheld_by_the_draw_is_recorded_as_not_shown(store):
    _pairs(store, 40)
    svc = _service(store, hide_fraction=0.5)
    hidden = {}
    screen = svc.current("ann")
    while screen is not None:
        hidden[screen.pair_id] = screen.suggestion_hidden
        # The page always says "shown" unless the user ticked the hide box; the draw must still win.
        screen = svc.vote("ann", screen.pair_id, "A", suggestion_shown=True)
    rows = dict(store.cursor().execute("SELECT pair_id, suggestion_shown FROM labels").fetchall())
    assert any(hidden.values()) and not all(hidden.values())
    assert all(rows[pid] == (not was_hidden) for pid, was_hidden in hidden.items())
