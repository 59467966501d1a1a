"""PrefLab's vocabulary: every enum-like value the database, the CLI and the UI share, defined once.

Members are `StrEnum`s, so they equal (and hash like) the strings stored in the database: `Decision.TIE == "tie"`.
The stored strings are fixed by the CHECK constraints in store/migrations/ (tests/common/test_vocab.py holds
them equal); a new value needs a migration and a member here. `values(Enum)` gives the plain strings, for
`choices=`, validation tuples and messages (3.11's `"x" in Enum` raises, and YAML cannot dump a member).
"""

from __future__ import annotations

from enum import StrEnum


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The enum's values as plain strings, in definition order."""
    return plain(*enum)


def plain(*members: StrEnum) -> tuple[str, ...]:
    """Members as plain strings: a subset of an enum, for validation tuples and messages."""
    return tuple(member.value for member in members)


class Decision(StrEnum):
    """A label's decision (labels.decision), naming gen_a/gen_b, never screen sides."""

    A = "a"
    B = "b"
    TIE = "tie"
    BOTH_BAD = "both_bad"
    SKIP = "skip"


# What a judge verdict or a label's suggestion may say (judge_verdicts.winner, labels.suggestion): no skip.
JUDGE_WINNERS = plain(Decision.A, Decision.B, Decision.TIE, Decision.BOTH_BAD)
# The decisions that prefer one response: the only ones a preference pair can be built from as they are.
PREFERENCES = plain(Decision.A, Decision.B)


class Side(StrEnum):
    """The two responses as the Annotate tab shows them (A left, B right); a vote is a side or a non-side decision."""

    A = "A"
    B = "B"


# The votes the Annotate tab accepts: a screen side, or a decision that names no side.
SCREEN_VOTES = plain(Side.A, Side.B, Decision.TIE, Decision.BOTH_BAD, Decision.SKIP)


class Vote(StrEnum):
    """A blind arena vote (battles.vote), in screen sides."""

    LEFT = "left"
    RIGHT = "right"
    TIE = "tie"
    BOTH_BAD = "both_bad"


class Order(StrEnum):
    """Which response a judge saw first (judge_verdicts.position_order): gen_a first or gen_b first."""

    AB = "ab"
    BA = "ba"


class LabelSource(StrEnum):
    """Where a label came from (labels.source)."""

    HUMAN = "human"
    JUDGE = "judge"
    IMPORT = "import"


class JobStatus(StrEnum):
    """A job's or a training run's status (jobs.status, runs.status)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A job or run that still holds (or waits for) a worker.
ACTIVE_STATUSES = plain(JobStatus.QUEUED, JobStatus.RUNNING)


class JobKind(StrEnum):
    """What a background job does (jobs.kind)."""

    GENERATE = "generate"
    JUDGE = "judge"
    JUDGE_BATCH = "judge_batch"
    TRAIN = "train"
    EVAL = "eval"


class ModelKind(StrEnum):
    """A model variant's kind (models.kind); 'imported' stands for responses read from a file."""

    BASE = "base"
    SFT = "sft"
    DPO = "dpo"
    IMPORTED = "imported"


class RunKind(StrEnum):
    """A training run's kind (runs.kind)."""

    SFT = "sft"
    DPO = "dpo"


class Split(StrEnum):
    """A prompt's split (prompts.split): trained and labelled on, or kept for evaluation."""

    TRAIN = "train"
    HELDOUT = "heldout"


class MetricSplit(StrEnum):
    """Which set a training metric was measured on (run_metrics.split)."""

    TRAIN = "train"
    EVAL = "eval"


class ExportTies(StrEnum):
    """Whether an export drops or keeps tie and both-bad labels (`export --ties`)."""

    DROP = "drop"
    KEEP = "keep"


class PairPolicy(StrEnum):
    """What DPO training does with ties and with both-bad labels (`tie_policy`, `both_bad_policy`)."""

    DROP = "drop"
    BOTH_ORDERS = "both_orders"


class RatingTies(StrEnum):
    """How arena ratings count a tie: half a win to each side, left out, or a loss."""

    HALF = "half"
    EXCLUDE = "exclude"
    LOSS = "loss"
