"""The labelling service: sides vs stored decisions, undo, resume, two annotators, hidden suggestions."""

from __future__ import annotations

import threading

import pytest

from annotate.labelling import AlreadyLabelledError, LabelConfig, LabelService, NothingToUndoError
from annotate.suggestions import Suggester, display_order
from common.errors import StoreError, UserInputError
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


def screen_decision(screen, side: str) -> str:
    """What a vote for a screen side is stored as (gen_a/gen_b terms)."""
    if side not in ("A", "B"):
        return side
    return {"A": "b", "B": "a"}[side] if screen.swapped else side.lower()


def live_labels(store, pair_id: int) -> list:
    return [lab for lab in store.labels_for_pair(pair_id) if lab.superseded_by is None]


class FailingCursor:
    """This thread's real cursor, except that the `times` next statements containing `match` raise `exc`."""

    def __init__(self, real, match: str, exc: BaseException, times: int = 1):
        self.real, self.match, self.exc, self.times = real, match, exc, times

    def execute(self, sql, *args, **kw):
        if self.match in sql and self.times > 0:
            self.times -= 1
            raise self.exc
        return self.real.execute(sql, *args, **kw)

    def __getattr__(self, name):
        return getattr(self.real, name)


def fail_next(monkeypatch, store, match: str, exc: BaseException, times: int = 1) -> FailingCursor:
    failing = FailingCursor(store.cursor(), match, exc, times)
    monkeypatch.setattr(store, "cursor", lambda: failing)
    return failing


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
    voted = svc.cast("ann", first.pair_id, "A", suggestion_shown=False)
    second = voted.next
    assert second.pair_id != first.pair_id and voted.pair_id == first.pair_id
    back = svc.undo("ann", voted.label_id)
    assert back.pair_id == first.pair_id
    assert svc.current("ann").pair_id == first.pair_id  # the undone pair is held again, not the second one
    labels = store.labels_for_pair(first.pair_id)
    assert len(labels) == 1 and labels[0].superseded_by == labels[0].id  # kept, withdrawn
    assert store.preference_triples() == []
    svc.vote("ann", first.pair_id, "B", suggestion_shown=False)
    assert len(store.labels_for_pair(first.pair_id)) == 2
    assert len(store.preference_triples()) == 1
    with pytest.raises(UserInputError, match="nothing to undo"):
        _service(store).undo("nobody", None)
    with pytest.raises(UserInputError, match="nothing to undo"):
        svc.undo("ann", voted.label_id)  # already withdrawn: a second undo of the same vote


def test_undo_withdraws_the_vote_the_page_showed_not_the_newest(store):
    _pairs(store, 3)
    svc = _service(store)
    first = svc.current("ann")
    mine = svc.cast("ann", first.pair_id, "A", suggestion_shown=False)  # this tab's vote
    other = svc.cast("ann", mine.next.pair_id, "B", suggestion_shown=False)  # then a vote from a second tab
    back = svc.undo("ann", mine.label_id)
    assert back.pair_id == first.pair_id
    assert live_labels(store, first.pair_id) == []
    assert [lab.id for lab in live_labels(store, other.pair_id)] == [other.label_id]
    with pytest.raises(UserInputError, match="nothing to undo"):
        svc.undo("bob", other.label_id)  # someone else's vote is never undone


def test_undo_is_one_transaction(store, monkeypatch):
    _pairs(store, 3)
    svc = _service(store)
    first = svc.current("ann")
    voted = svc.cast("ann", first.pair_id, "A", suggestion_shown=False)
    # Holding the undone pair fails after the label was withdrawn: the withdrawal must not stay behind.
    fail_next(monkeypatch, store, "INSERT INTO assignments", RuntimeError("killed mid-undo"))
    with pytest.raises(RuntimeError, match="killed mid-undo"):
        svc.undo("ann", voted.label_id)
    monkeypatch.undo()
    assert [lab.id for lab in live_labels(store, first.pair_id)] == [voted.label_id]
    assert svc.current("ann").pair_id == voted.next.pair_id  # still holding the pair it held before


def test_two_votes_at_once_on_each_pair_keep_one_live_label(store):
    pairs = _pairs(store, 200)
    svc = _service(store)
    refused: list[int] = []

    def vote(pair_id: int, side: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            svc.vote("ann", pair_id, side, suggestion_shown=False)
        except AlreadyLabelledError:
            refused.append(pair_id)

    for start in range(0, len(pairs), 25):  # 25 pairs at a time: 50 threads racing
        threads = []
        for pair_id in pairs[start : start + 25]:
            barrier = threading.Barrier(2)
            threads += [threading.Thread(target=vote, args=(pair_id, s, barrier)) for s in ("A", "B")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert {pid: len(live_labels(store, pid)) for pid in pairs} == dict.fromkeys(pairs, 1)
    assert sorted(refused) == pairs  # every second vote was refused, and said so
    assert store.counts()["labels"] == 200 and len(store.preference_triples()) == 200
    assert store.progress("ann").mine == 200
    pair_id = pairs[0]
    (label,) = live_labels(store, pair_id)
    svc.undo("ann", label.id)
    assert live_labels(store, pair_id) == [] and len(store.preference_triples()) == 199


def test_a_full_disk_is_one_clear_line_and_keeps_earlier_votes(store, monkeypatch):
    import duckdb

    _pairs(store, 3)
    svc = _service(store)
    screen = svc.current("ann")
    screen = svc.vote("ann", screen.pair_id, "A", suggestion_shown=False)
    disk_full = duckdb.IOException(
        'IO Error: Could not write all bytes to file "db.duckdb.wal": No space left on device'
    )
    for statement in ("INSERT INTO labels", "COMMIT"):
        fail_next(monkeypatch, store, statement, disk_full)
        with pytest.raises(StoreError) as info:
            svc.vote("ann", screen.pair_id, "B", suggestion_shown=False)
        monkeypatch.undo()
        message = str(info.value)
        assert "\n" not in message and message.startswith("could not save to the database")
        assert "No space left on device" in message
        assert live_labels(store, screen.pair_id) == []  # nothing half-written
        assert store.counts()["labels"] == 1  # the earlier vote is kept
    after = svc.vote("ann", screen.pair_id, "B", suggestion_shown=False)  # space again: the vote goes through
    assert after is not None and store.counts()["labels"] == 2


def test_reload_resumes_the_held_pair_and_double_vote_is_ignored(store):
    _pairs(store, 3)
    svc = _service(store)
    first = svc.current("ann")
    assert svc.current("ann").pair_id == first.pair_id  # a page reload
    svc.vote("ann", first.pair_id, "A", suggestion_shown=False)
    # A stale second click (or a second tab) on the same pair: refused with a warning the page shows.
    with pytest.raises(AlreadyLabelledError, match=f"pair #{first.pair_id} already has your vote"):
        svc.vote("ann", first.pair_id, "B", suggestion_shown=False)
    live = [lab for lab in store.labels_for_pair(first.pair_id) if lab.superseded_by is None]
    assert [(lab.annotator, lab.decision) for lab in live] == [("ann", screen_decision(first, "A"))]
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
    stored = store.cursor().execute(
        "SELECT note, chosen_edit FROM labels WHERE pair_id = ?", [screen.pair_id]
    )
    assert stored.fetchall() == [("n", "Severity: SEV1 (edited)")]


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


def _annotate_service(store, tmp_path, users: str | None):
    """The Annotate tab's service over `store`, with the roles of a users file (None: no --auth)."""
    from annotate.jobs import JobRunner
    from annotate.service import AnnotateService
    from common.access import parse_auth
    from common.context import AppConfig, Context

    access = parse_auth(None)
    if users is not None:
        path = tmp_path / "users.txt"
        path.write_text(users)
        access = parse_auth(str(path))
    ctx = Context(
        cfg=AppConfig(home=tmp_path / "home"),
        store=store,
        judge=RuleJudge(),
        jobs=JobRunner(store),
        access=access,
    )
    return AnnotateService(ctx)


def test_annotate_roles_labels_under_the_login_and_generation_needs_an_admin(store, tmp_path):
    from common.errors import PermissionDeniedError

    _pairs(store, 3)
    svc = _annotate_service(store, tmp_path, "ann:pw-1\nroot:pw-2:admin\n")
    screen = svc.current("mallory", username="ann")  # the textbox claims someone else; the login wins
    voted = svc.cast("mallory", screen.pair_id, "A", username="ann", suggestion_shown=False)
    assert [lab.annotator for lab in live_labels(store, screen.pair_id)] == ["ann"]
    with pytest.raises(NothingToUndoError):
        svc.undo("ann", voted.label_id, username="root")  # another login never undoes ann's vote
    assert svc.undo("ann", voted.label_id, username="ann").pair_id == screen.pair_id
    for anonymous in (None, "stranger"):
        with pytest.raises(PermissionDeniedError):
            svc.current("ann", username=anonymous)
        with pytest.raises(PermissionDeniedError):
            svc.cast("ann", screen.pair_id, "A", username=anonymous, suggestion_shown=False)
    jobs_before = store.cursor().execute("SELECT count(*) FROM jobs").fetchone()[0]
    for who in ("ann", None):
        with pytest.raises(PermissionDeniedError, match="admin"):
            svc.start_generation(username=who)
        with pytest.raises(PermissionDeniedError, match="admin"):
            svc.cancel_generation(username=who)
    assert store.cursor().execute("SELECT count(*) FROM jobs").fetchone()[0] == jobs_before
    # The admin passes the role check and meets the next one: no such variant.
    from annotate.generation import GenerateConfig

    with pytest.raises(UserInputError, match="no `nope` variant"):
        svc.start_generation(GenerateConfig(variant="nope"), username="root")
    assert svc.cancel_generation(username="root") is False  # nothing running, but allowed


def test_without_auth_the_typed_name_labels_and_the_local_user_is_admin(store, tmp_path):
    _pairs(store, 2)
    svc = _annotate_service(store, tmp_path, None)
    screen = svc.current("carol")
    svc.vote("carol", screen.pair_id, "B", suggestion_shown=False)
    assert [lab.annotator for lab in live_labels(store, screen.pair_id)] == ["carol"]
    assert svc.cancel_generation() is False


def test_a_suggestion_counts_as_shown_only_if_the_page_displayed_that_one(store):
    from dataclasses import replace

    from annotate.ui import shown_suggestion
    from models.judge import PairVerdict

    _pairs(store, 3)
    svc = _service(store)
    screen = svc.current("ann")
    good = screen.suggestion_side  # the rule judge suggests the well-formed answer
    assert good in ("A", "B") and shown_suggestion(screen, hide=False) == good
    # What the page records as displayed: nothing while the judge works, failed, is hidden or abstains.
    assert shown_suggestion(screen, hide=True) is None
    assert shown_suggestion(replace(screen, verdict=None), hide=False) is None
    failed = PairVerdict.combine(None, None, error="overloaded")
    assert shown_suggestion(replace(screen, verdict=failed), hide=False) is None
    assert shown_suggestion(replace(screen, suggestion_hidden=True), hide=False) is None
    # The page drew a failure, then a retry landed before the vote: the person never saw that suggestion.
    nxt = svc.cast("ann", screen.pair_id, "A", suggestion_shown=False, shown_side=None).next
    # The page showed the other side than the judge's (a stale drawing): not the suggestion it records.
    other = "B" if nxt.suggestion_side == "A" else "A"
    last = svc.cast("ann", nxt.pair_id, "A", suggestion_shown=True, shown_side=other).next
    svc.cast("ann", last.pair_id, "A", suggestion_shown=True, shown_side=last.suggestion_side)
    rows = store.cursor().execute("SELECT pair_id, suggestion, suggestion_shown FROM labels ORDER BY id")
    assert [(s is not None, shown) for _, s, shown in rows.fetchall()] == [
        (True, False),
        (True, False),
        (True, True),
    ]
