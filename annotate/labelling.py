"""The labelling service behind the Annotate tab: next pair, vote, undo; every label committed first."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from common.errors import UserInputError
from common.vocab import SCREEN_VOTES, Decision, Side

# The longest note and chosen-response edit accepted (the textboxes cap the same; the API must too).
MAX_NOTE_CHARS = 2000
MAX_EDIT_CHARS = 20000
_ANNOTATOR = re.compile(r"^[\w.@+-]{1,64}$")


@dataclass(frozen=True)
class LabelConfig:
    """How pairs are handed out and how often the judge's suggestion is withheld."""

    hide_fraction: float = field(
        default=0.1, metadata={"help": "share of pairs shown without the suggestion"}
    )
    overlap: float = field(default=0.0, metadata={"help": "share of pairs labelled by two annotators"})
    assignment_timeout_s: float = field(
        default=1800.0, metadata={"help": "an abandoned pair returns after this"}
    )
    seed: int = field(default=0, metadata={"help": "recorded base seed for screen order and hiding"})

    def __post_init__(self):
        for name in ("hide_fraction", "overlap"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise UserInputError(f"{name} must be within 0..1, got {value!r}")
        if self.assignment_timeout_s <= 0:
            raise UserInputError(f"assignment_timeout_s must be > 0, got {self.assignment_timeout_s!r}")


@dataclass(frozen=True)
class Screen:
    """One pair as the annotator sees it: sides, suggestion in screen terms, progress."""

    pair_id: int
    prompt: list[dict]
    text_left: str  # shown as A
    text_right: str  # shown as B
    left_gen: int
    right_gen: int
    seed: int
    swapped: bool
    suggestion_hidden: bool  # withheld for this pair by the random draw
    judge_label: str
    verdict: object | None  # PairVerdict in screen terms, or None while the judge is working
    mine: int
    total: int
    labelled_pairs: int

    @property
    def suggestion_side(self) -> str | None:
        """'A', 'B' or 'tie' in screen terms, when the judge is position-consistent."""
        if self.verdict is None or getattr(self.verdict, "suggestion", None) is None:
            return None
        return _screen_side(self.verdict.suggestion)

    def suggestion_gen(self) -> str | None:
        """The suggestion in gen terms (what the label records)."""
        side = self.suggestion_side
        return None if side is None else _decision(side, self.swapped)


class AlreadyLabelledError(UserInputError):
    """A vote on a pair this annotator already labelled (a double key press, a stale second tab)."""


class NothingToUndoError(UserInputError):
    """Undo named no vote, or one that was already undone (in another tab, say)."""


@dataclass(frozen=True)
class Voted:
    """A stored vote: its label (what undo names) and the next pair to show."""

    label_id: int
    pair_id: int
    next: Screen | None


def _decision(side: str, swapped: bool) -> str:
    """Screen side -> stored decision naming gen_a/gen_b."""
    if side == Side.A:
        return Decision.B.value if swapped else Decision.A.value
    if side == Side.B:
        return Decision.A.value if swapped else Decision.B.value
    return side


def _screen_side(suggestion: str) -> str:
    """A screen-terms suggestion ('a' = shown as A) as the vote button it names: 'A', 'B', or 'tie' as it is."""
    sides: dict[str, str] = {Decision.A: Side.A.value, Decision.B: Side.B.value}
    return sides.get(suggestion, suggestion)


def check_annotator(name: str) -> str:
    """Annotator names are logins or typed names: short, no spaces or markup."""
    name = (name or "").strip()
    if not _ANNOTATOR.match(name):
        raise UserInputError("annotator name: 1-64 letters, digits or . _ @ + -")
    return name


class LabelService:
    """Hands out pairs, records votes and undo; the only path a human label takes into the store."""

    def __init__(self, store, suggester, cfg: LabelConfig | None = None):
        self.store = store
        self.suggester = suggester
        self.cfg = cfg or LabelConfig()

    def current(self, annotator: str) -> Screen | None:
        """The pair this annotator holds (resumed after a reload) or the next free one; None when done."""
        annotator = check_annotator(annotator)
        pair_id = self.store.claim_pair(
            annotator, timeout_s=self.cfg.assignment_timeout_s, overlap=self.cfg.overlap
        )
        if pair_id is None:
            return None
        screen = self._screen(annotator, pair_id)
        self.suggester.prefetch_unjudged()
        return screen

    def refresh(self, annotator: str, pair_id: int) -> Screen:
        """The same pair again, e.g. once a pending suggestion arrived."""
        return self._screen(check_annotator(annotator), pair_id)

    def vote(self, annotator: str, pair_id: int, side: str, **kw) -> Screen | None:
        """Commit a label for the held pair, then return the next pair (see `cast`)."""
        return self.cast(annotator, pair_id, side, **kw).next

    def cast(
        self,
        annotator: str,
        pair_id: int,
        side: str,
        *,
        suggestion_shown: bool,
        shown_side: str | None = None,
        note: str | None = None,
        chosen_edit: str | None = None,
        seconds_spent: float | None = None,
    ) -> Voted:
        """Commit a label for the pair on screen; AlreadyLabelledError if this annotator's vote is stored."""
        annotator = check_annotator(annotator)
        if side not in SCREEN_VOTES:
            raise UserInputError(f"vote must be one of {', '.join(SCREEN_VOTES)}, got {side!r}")
        pair = self.store.get_pair_view(pair_id)
        if pair is None:
            raise UserInputError(f"pair {pair_id} does not exist")
        if note is not None and len(note) > MAX_NOTE_CHARS:
            raise UserInputError(f"a note holds at most {MAX_NOTE_CHARS} characters, got {len(note)}")
        if chosen_edit is not None and len(chosen_edit) > MAX_EDIT_CHARS:
            raise UserInputError(f"an edit holds at most {MAX_EDIT_CHARS} characters, got {len(chosen_edit)}")
        edit = (chosen_edit or "").strip() or None
        if edit is not None and side not in (Side.A, Side.B):
            raise UserInputError("an edit of the chosen response needs a vote for A or B")
        order = self.suggester.order(pair_id)
        left, right = (pair.gen_b, pair.gen_a) if order.swapped else (pair.gen_a, pair.gen_b)
        verdict = self.suggester.cached(pair_id)
        suggestion = side_now = None
        if verdict is not None and verdict.suggestion is not None:
            side_now = _screen_side(verdict.suggestion)
            suggestion = _decision(side_now, order.swapped)
        # `shown_side`: the suggestion the page displayed (screen terms). A verdict that arrived after the page
        # was drawn, or one that differs from it, was not seen.
        seen = suggestion_shown and (shown_side is None or shown_side == side_now)
        label_id = self.store.record_vote(
            pair_id,
            annotator,
            _decision(side, order.swapped),
            left_gen=left,
            right_gen=right,
            seed=order.seed,
            # Shown only if the page showed it: not when the random draw withheld it for this pair.
            suggestion_shown=bool(seen and suggestion is not None and not order.hide_suggestion),
            suggestion=suggestion,
            chosen_edit=edit,
            note=(note or "").strip() or None,
            seconds_spent=seconds_spent,
        )
        if label_id is None:
            # A double key press or a second tab: the stored vote stands, and the page must say so.
            raise AlreadyLabelledError(
                f"pair #{pair_id} already has your vote (a second key press or another tab); "
                "this one was not stored, press Undo to change it"
            )
        return Voted(label_id, pair_id, self.current(annotator))

    def undo(self, annotator: str, label_id: int | None) -> Screen:
        """Withdraw the vote the page showed (kept, superseded) and hold its pair again, in one transaction."""
        annotator = check_annotator(annotator)
        pair_id = None if label_id is None else self.store.undo_vote(annotator, int(label_id))
        if pair_id is None:
            raise NothingToUndoError(
                "nothing to undo: that vote was already undone, or there is none on this page"
            )
        return self._screen(annotator, pair_id)

    def _screen(self, annotator: str, pair_id: int) -> Screen:
        pair = self.store.get_pair_view(pair_id)
        order = self.suggester.order(pair_id)
        left, right = (pair.gen_b, pair.gen_a) if order.swapped else (pair.gen_a, pair.gen_b)
        text_left, text_right = (pair.text_b, pair.text_a) if order.swapped else (pair.text_a, pair.text_b)
        verdict = self.suggester.get(pair_id)
        progress = self.store.progress(annotator)
        return Screen(
            pair_id=pair_id,
            prompt=pair.messages,
            text_left=text_left,
            text_right=text_right,
            left_gen=left,
            right_gen=right,
            seed=order.seed,
            swapped=order.swapped,
            suggestion_hidden=order.hide_suggestion,
            judge_label=self.suggester.label,
            verdict=verdict,
            mine=progress.mine,
            total=progress.total,
            labelled_pairs=progress.labelled_pairs,
        )
