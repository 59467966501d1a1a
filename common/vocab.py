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

    A = "a"  # gen_a is better
    B = "b"  # gen_b is better
    TIE = "tie"  # as good as each other
    BOTH_BAD = "both_bad"  # neither is acceptable
    SKIP = "skip"  # not judged: never a training example


# What a judge verdict or a label's suggestion may say (judge_verdicts.winner, labels.suggestion): no skip.
JUDGE_WINNERS = plain(Decision.A, Decision.B, Decision.TIE, Decision.BOTH_BAD)
# The decisions that prefer one response: the only ones a preference pair can be built from as they are.
PREFERENCES = plain(Decision.A, Decision.B)


class Side(StrEnum):
    """The two responses as the Annotate tab shows them (A left, B right); a vote is a side or a non-side decision."""

    A = "A"  # shown on the left
    B = "B"  # shown on the right


# The votes the Annotate tab accepts: a screen side, or a decision that names no side.
SCREEN_VOTES = plain(Side.A, Side.B, Decision.TIE, Decision.BOTH_BAD, Decision.SKIP)


class Vote(StrEnum):
    """A blind arena vote (battles.vote), in screen sides."""

    LEFT = "left"  # the left response is better
    RIGHT = "right"  # the right response is better
    TIE = "tie"
    BOTH_BAD = "both_bad"


class Order(StrEnum):
    """Which response a judge saw first (judge_verdicts.position_order): gen_a first or gen_b first."""

    AB = "ab"  # gen_a shown first
    BA = "ba"  # gen_b shown first


class LabelSource(StrEnum):
    """Where a label came from (labels.source)."""

    HUMAN = "human"  # a person's vote in the Annotate tab
    JUDGE = "judge"  # a judge verdict consistent in both orders, accepted as a label
    IMPORT = "import"  # read from a preference dataset


class JobStatus(StrEnum):
    """A job's or a training run's status (jobs.status, runs.status)."""

    QUEUED = "queued"  # created, or waiting for the device
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the error column says why
    CANCELLED = "cancelled"  # by a person, a time limit or an interrupt


# A job or run that still holds (or waits for) a worker.
ACTIVE_STATUSES = plain(JobStatus.QUEUED, JobStatus.RUNNING)


class JobKind(StrEnum):
    """What a background job does (jobs.kind)."""

    GENERATE = "generate"  # responses for the prompts' pairs
    JUDGE = "judge"  # judge verdicts, one request at a time
    JUDGE_BATCH = "judge_batch"  # judge verdicts through a provider's batch API
    TRAIN = "train"  # SFT or DPO
    EVAL = "eval"  # held-out responses and their scores


class ModelKind(StrEnum):
    """A model variant's kind (models.kind); 'imported' stands for responses read from a file."""

    BASE = "base"  # a base model as it was downloaded
    SFT = "sft"  # a base with a supervised adapter
    DPO = "dpo"  # with a DPO adapter on top
    IMPORTED = "imported"  # stands for a dataset's responses: no weights


class RunKind(StrEnum):
    """A training run's kind (runs.kind)."""

    SFT = "sft"  # supervised fine-tuning on the chosen responses
    DPO = "dpo"  # direct preference optimisation on the pairs


class Split(StrEnum):
    """A prompt's split (prompts.split): trained and labelled on, or kept for evaluation."""

    TRAIN = "train"  # labelled and trained on
    HELDOUT = "heldout"  # kept for evaluation


# The prompt sets an eval or an arena matchup may run on, in the order their dropdowns list them (the default first).
PROMPT_SETS = plain(Split.HELDOUT, Split.TRAIN)


class MetricSplit(StrEnum):
    """Which set a training metric was measured on (run_metrics.split)."""

    TRAIN = "train"  # the training triples
    EVAL = "eval"  # the validation triples


class ExportTies(StrEnum):
    """Whether an export drops or keeps tie and both-bad labels (`export --ties`)."""

    DROP = "drop"  # every exported row has a real preference
    KEEP = "keep"  # `decision` says which rows are ties or both-bad


class PairPolicy(StrEnum):
    """What DPO training does with ties and with both-bad labels (`tie_policy`, `both_bad_policy`)."""

    DROP = "drop"  # left out of training
    BOTH_ORDERS = "both_orders"  # two mirrored triples that pull the reward gap toward zero


class RatingTies(StrEnum):
    """How arena ratings count a tie: half a win to each side, left out, or a loss."""

    HALF = "half"  # half a win to each side
    EXCLUDE = "exclude"  # left out
    LOSS = "loss"  # a non-win for the variant being rated
