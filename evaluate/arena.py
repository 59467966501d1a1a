"""The blind arena: battles between two variants, votes, reveals and the running result.

The service returns data (battles, vote receipts, results, the leaderboard table); the Arena tab renders it
(evaluate/arena_view.py).
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.access import Role
from common.errors import UserInputError
from common.settings import keyed_seed
from common.vocab import PROMPT_SETS, JobKind, ModelKind, Split, Vote, values
from evaluate.responses import ResponseParams, ensure_responses

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

VOTES = values(Vote)
# Words that give a model away when a response names itself.
_LEAK_WORDS = ("smollm", "sft", "dpo", "lora", "adapter", "fine-tuned", "finetuned")


@dataclass(frozen=True)
class Battle:
    """One blind battle; lives only on the server (gr.State) until the vote."""

    prompt_id: int
    prompt: list[dict]
    left_text: str
    right_text: str
    left_gen: int
    right_gen: int
    seed: int
    left_variant: str
    right_variant: str
    leak: bool  # a response names a model or adapter
    matchup: Matchup | None = None


@dataclass(frozen=True)
class Matchup:
    a: str
    b: str
    prompt_set: str = Split.HELDOUT.value

    def __post_init__(self):
        if self.a == self.b:
            raise UserInputError(f"pick two different variants, got {self.a!r} twice")
        if self.prompt_set not in PROMPT_SETS:
            raise UserInputError(f"prompt set must be heldout or train, got {self.prompt_set!r}")


@dataclass(frozen=True)
class VoteReceipt:
    """A stored vote and the identities it reveals: the first moment they reach the browser."""

    vote_id: int
    left_variant: str
    right_variant: str
    vote: str

    @property
    def picked(self) -> str | None:
        """The preferred variant, or None for a tie or both bad."""
        return {Vote.LEFT: self.left_variant, Vote.RIGHT: self.right_variant}.get(self.vote)


@dataclass(frozen=True)
class ArenaResults:
    """The running result of one matchup, and the leaderboard of every variant once three or more met."""

    win: object  # evaluate.ratings.WinRate of matchup.b over matchup.a
    position_bias: dict  # evaluate.ratings.position_bias
    length: object | None  # evaluate.ratings.LengthControlled, None while too few votes for its regression
    length_error: str | None  # why there is no length-controlled rate yet
    n_votes: int
    n_voters: int
    leaderboard: pd.DataFrame | None  # evaluate.ratings.bradley_terry's table, or None


def battle_seed(secret: bytes, base_seed: int, voter: str, prompt_id: int, matchup: Matchup) -> int:
    """Recorded seed of a battle's screen order, keyed by the install secret so no voter can predict it."""
    return keyed_seed(secret, "battle", base_seed, voter, prompt_id, matchup.a, matchup.b)


def names_a_model(text: str, variants: tuple[str, ...]) -> bool:
    """Whether a response names a model, an adapter or one of the compared variants."""
    low = text.lower()
    if any(v.lower() in low for v in variants if len(v) > 2):
        return True
    return any(re.search(rf"\b{re.escape(w)}\b", low) for w in _LEAK_WORDS)


class ArenaService:
    """Battles for the Arena tab; identities leave the server only in a reveal, after the vote.

    Methods behind an event take the login (`gr.Request.username`, None without `--auth`) and check its
    role: voting and fetching battles need `annotator`, preparing and closing an arena `admin`.
    """

    def __init__(self, ctx, *, params: ResponseParams | None = None, base_seed: int = 0):
        self.ctx = ctx
        self.store = ctx.store
        self.params = params or ResponseParams()
        self.base_seed = base_seed
        self.secret = ctx.secret  # read once: a file under the home, never in the database

    def voter(self, username: str | None, typed: str | None = None) -> str:
        """Who votes: the login when auth is on, else the typed name (direct callers may pass only a name)."""
        self.ctx.access.require(username, Role.ANNOTATOR)
        return self.ctx.access.identity(username, typed if typed is not None else username) or "voter"

    def variants(self) -> list[str]:
        return [m.name for m in self.store.list_models() if m.kind != ModelKind.IMPORTED]

    def default_matchup(self) -> Matchup | None:
        """`sft` vs the newest `sft+dpo@…`, else the two newest variants."""
        models = [m for m in self.store.list_models() if m.kind != ModelKind.IMPORTED]
        names = {m.name for m in models}
        dpo = sorted((m for m in models if m.name.startswith("sft+dpo@")), key=lambda m: m.id)
        if "sft" in names and dpo:
            return Matchup("sft", dpo[-1].name)
        # Trained variants first: the base model is registered on every first run and rarely the question.
        ranked = sorted(models, key=lambda m: (m.kind != ModelKind.BASE, m.id))[-2:]
        return Matchup(ranked[0].name, ranked[1].name) if len(ranked) == 2 else None

    def _prompts(self, matchup: Matchup):
        prompts = self.store.list_prompts(split=matchup.prompt_set)
        if not prompts:
            raise UserInputError(f"no {matchup.prompt_set} prompts: import some first")
        return prompts

    def _model_ids(self, matchup: Matchup) -> tuple[int, int]:
        rows = [self.store.get_model(name) for name in (matchup.a, matchup.b)]
        for name, row in zip((matchup.a, matchup.b), rows, strict=True):
            if row is None:
                raise UserInputError(f"no variant named {name!r}")
        return rows[0].id, rows[1].id

    def open(self, username: str | None, matchup: Matchup) -> None:
        """Open the matchup: its battles may be served, and the Eval viewer withholds its responses."""
        self.ctx.access.require(username, Role.ADMIN)
        a, b = self._model_ids(matchup)
        self.store.open_arena(a, b, matchup.prompt_set, username)

    def close(self, username: str | None, matchup: Matchup) -> bool:
        """Close the matchup: no more battles, and the Eval viewer shows its responses again. False if not open."""
        self.ctx.access.require(username, Role.ADMIN)
        a, b = self._model_ids(matchup)
        return bool(self.store.close_arena(a, b, matchup.prompt_set, username))

    def is_open(self, matchup: Matchup) -> bool:
        a, b = self.store.get_model(matchup.a), self.store.get_model(matchup.b)
        return a is not None and b is not None and self.store.arena_is_open(a.id, b.id, matchup.prompt_set)

    def prepare(self, username: str | None, matchup: Matchup, *, limit: int | None = None) -> int:
        """Open the matchup and generate both variants' responses in the background; battles open as they land."""
        self.ctx.access.require(username, Role.ADMIN)
        self._model_ids(matchup)
        prompts = self._prompts(matchup)[:limit]
        self.open(username, matchup)

        def body(handle) -> dict:
            total = 2 * len(prompts)
            for i, name in enumerate((matchup.a, matchup.b)):
                ensure_responses(
                    self.store,
                    self.ctx.generator,
                    name,
                    prompts,
                    self.params,
                    progress=lambda done, _n, i=i: handle.progress(i * len(prompts) + done, total),
                    should_stop=lambda: handle.cancelled,
                )
            return {"prompts": len(prompts), "variants": [matchup.a, matchup.b]}

        from annotate.models_service import uses_local_device

        params = {"arena": [matchup.a, matchup.b], "prompts": len(prompts)}
        local = uses_local_device(self.store, [matchup.a, matchup.b])
        return self.ctx.jobs.start(JobKind.EVAL, params, body, local=local)

    def next_battle(
        self, username: str | None, matchup: Matchup, *, typed: str | None = None
    ) -> Battle | None:
        """A prompt of an open matchup with both responses ready that this voter has not judged; else None."""
        voter = self.voter(username, typed)
        a, b = self.store.get_model(matchup.a), self.store.get_model(matchup.b)
        if a is None or b is None or not self.store.arena_is_open(a.id, b.id, matchup.prompt_set):
            return None
        prompts = {p.id: p for p in self._prompts(matchup)}
        ready = self.store.arena_candidates(a.id, b.id, self.params.cell(), list(prompts))
        seen = self.store.voted_generation_pairs(voter)
        fresh = [r for r in ready if frozenset((r[1], r[2])) not in seen]
        if not fresh:
            return None
        # A per-voter order, so two voters do not walk the prompts in lockstep.
        fresh.sort(key=lambda r: battle_seed(self.secret, self.base_seed, voter, r[0], matchup))
        prompt_id, gen_a, gen_b = fresh[0]
        seed = battle_seed(self.secret, self.base_seed, voter, prompt_id, matchup)
        texts = self.store.generation_texts([gen_a, gen_b])
        a_left = random.Random(seed).random() < 0.5
        left, right = (
            ((gen_a, matchup.a), (gen_b, matchup.b)) if a_left else ((gen_b, matchup.b), (gen_a, matchup.a))
        )
        variants = (matchup.a, matchup.b)
        return Battle(
            prompt_id,
            prompts[prompt_id].messages,
            texts[left[0]],
            texts[right[0]],
            left[0],
            right[0],
            seed,
            left[1],
            right[1],
            names_a_model(texts[gen_a], variants) or names_a_model(texts[gen_b], variants),
            matchup,
        )

    def vote(
        self, username: str | None, battle: Battle, vote: str, *, typed: str | None = None
    ) -> VoteReceipt:
        """Store the vote; returns its receipt, which names both sides (the reveal)."""
        voter = self.voter(username, typed)
        if vote not in VOTES:
            raise UserInputError(f"vote must be one of {', '.join(VOTES)}, got {vote!r}")
        if battle.matchup is not None and not self.is_open(battle.matchup):
            # Once closed, the Eval viewer shows these texts under their names: a vote now would not be blind.
            raise UserInputError("this arena was closed before the vote; the vote was not stored")
        vote_id = self.store.add_battle(
            battle.prompt_id, battle.left_gen, battle.right_gen, battle.seed, voter, vote
        )
        return VoteReceipt(vote_id, battle.left_variant, battle.right_variant, vote)

    def results(self, matchup: Matchup) -> ArenaResults | None:
        """Win rate with its interval, position bias and the length-controlled rate; None before the first vote."""
        from evaluate.ratings import length_controlled_win_rate, position_bias, win_rate

        frame = self.store.battle_frame()
        pair = frame[
            ((frame["left"] == matchup.a) & (frame["right"] == matchup.b))
            | ((frame["left"] == matchup.b) & (frame["right"] == matchup.a))
        ]
        if pair.empty:
            return None
        length, length_error = None, None
        try:
            length = length_controlled_win_rate(pair, matchup.b, matchup.a)
        except Exception as exc:  # too few votes for the regression: say so instead of failing the tab
            length_error = str(exc)
        return ArenaResults(
            win=win_rate(pair, matchup.b, matchup.a),
            position_bias=position_bias(pair),
            length=length,
            length_error=length_error,
            n_votes=len(pair),
            n_voters=int(pair["voter"].nunique()),
            leaderboard=self.leaderboard(frame),
        )

    def leaderboard(self, frame=None) -> pd.DataFrame | None:
        """Bradley–Terry ratings (Elo scale, bootstrap 95% intervals), best first, once three or more variants met."""
        from evaluate.ratings import bradley_terry

        frame = self.store.battle_frame() if frame is None else frame
        if frame.empty or len(set(frame["left"]) | set(frame["right"])) < 3:
            return None
        return bradley_terry(frame, n_boot=200, seed=self.base_seed)
