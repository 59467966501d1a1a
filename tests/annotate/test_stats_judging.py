"""Labelling statistics against hand-computed figures, bulk judging, and accepting judge labels."""

from __future__ import annotations

import pandas as pd
import pytest

from annotate.judging import accept_consistent, build_judge, judge_all, judge_pending
from annotate.labelling import LabelConfig, LabelService
from annotate.stats import cohen_kappa, labelling_stats
from annotate.suggestions import Suggester
from models.judge import RuleJudge

GOOD = "Severity: SEV1\nSummary: The api is down.\nNext steps:\n- Roll back the deploy.\n- Page the on-call."
BAD = "dunno"


def _labels(rows):
    cols = [
        "label_id",
        "pair_id",
        "annotator",
        "source",
        "decision",
        "suggestion",
        "suggestion_shown",
        "seconds_spent",
    ]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


def test_cohen_kappa_hand_computed():
    # 2x2 table: agree a/a 2, b/b 1, disagree 1 -> po = 0.75, pe = 0.5*0.75+0.5*0.25 = 0.5, κ = 0.5
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "a", "b", "a"]) == pytest.approx(0.5)
    assert cohen_kappa(["a"], ["a"]) is None
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # one category: undefined, not 1


def test_agreement_split_by_shown_and_hidden_and_override_rate():
    labels = _labels(
        [
            (1, 1, "ann", "human", "a", "a", True, 4.0),
            (2, 2, "ann", "human", "b", "a", True, 6.0),  # override
            (3, 3, "ann", "human", "a", "a", False, 2.0),
            (4, 4, "ann", "human", "skip", "a", True, 1.0),
            (5, 5, "judge:rule", "judge", "a", "a", False, None),  # never counted as human
        ]
    )
    stats = labelling_stats(
        labels,
        pd.DataFrame(
            columns=[
                "pair_id",
                "judge",
                "model",
                "rubric_hash",
                "position_order",
                "winner",
                "input_tokens",
                "output_tokens",
            ]
        ),
    )
    shown = stats["judge_human_agreement"]["suggestion_shown"]
    assert shown["n"] == 2 and shown["accuracy"] == 0.5
    assert stats["judge_human_agreement"]["suggestion_hidden"]["n"] == 1
    assert stats["override_rate"] == 0.5
    assert stats["labels_by_source"] == {"human": 4, "judge": 1}
    assert stats["mean_seconds_per_label"] == pytest.approx(13 / 4)


def test_inter_annotator_kappa_on_overlap():
    labels = _labels(
        [
            (1, 1, "ann", "human", "a", None, False, None),
            (2, 1, "bob", "human", "a", None, False, None),
            (3, 2, "ann", "human", "b", None, False, None),
            (4, 2, "bob", "human", "b", None, False, None),
            (5, 3, "ann", "human", "a", None, False, None),
            (6, 3, "bob", "human", "b", None, False, None),
            (7, 4, "ann", "human", "b", None, False, None),
        ]
    )
    ia = labelling_stats(
        labels,
        pd.DataFrame(
            columns=[
                "pair_id",
                "judge",
                "model",
                "rubric_hash",
                "position_order",
                "winner",
                "input_tokens",
                "output_tokens",
            ]
        ),
    )["inter_annotator"]
    assert ia["overlapping_pairs"] == 3
    assert ia["kappa"] == pytest.approx(cohen_kappa(["a", "b", "a"], ["a", "b", "b"]))


def _pairs(store, n):
    model = store.ensure_model("sft", "tiny", [], "sft")
    for i in range(n):
        pid = store.add_prompt(
            [{"role": "user", "content": f"incident {i}"}], "t", "train", gold={"severity": "SEV1"}
        )
        a = store.add_generation(pid, model.id, f"{GOOD} {i}" if i % 2 else f"{BAD} {i}")
        b = store.add_generation(pid, model.id, f"{BAD} {i}" if i % 2 else f"{GOOD} {i}")
        store.add_pair(pid, a, b)


def test_judge_all_judges_the_pending_pairs_then_accepts_them(store):
    from types import SimpleNamespace

    _pairs(store, 4)
    ctx, seen = SimpleNamespace(store=store), []
    report = judge_all(
        ctx, build_judge("rule"), accept=True, progress=lambda done, total: seen.append((done, total))
    )
    assert (report.judged, report.consistent, report.accepted, seen[-1]) == (4, 4, 4, (4, 4))
    again = judge_all(ctx, build_judge("rule"), accept=True)
    assert (again.judged, again.accepted) == (0, 0)  # nothing asked or labelled twice
    assert len(store.preference_triples()) == 4


def test_bulk_judging_then_accept_stores_judge_labels_in_gen_terms(store):
    _pairs(store, 10)
    suggester = Suggester(store, RuleJudge())
    report = judge_pending(suggester)
    assert report.judged == 10 and report.consistent == 10
    assert judge_pending(suggester).judged == 0  # cached: nothing asked twice
    assert accept_consistent(suggester) == 10
    assert accept_consistent(suggester) == 0
    triples = store.preference_triples()
    assert len(triples) == 10 and all(t.source == "judge" and t.annotator == "judge:rule" for t in triples)
    assert all(t.chosen.startswith("Severity") for t in triples)
    stats = labelling_stats(store.label_frame(), store.verdict_frame())
    assert stats["judges"]["rule"]["position_inconsistency_rate"] == 0.0
    assert stats["judge_human_agreement"]["suggestion_shown"]["n"] == 0  # judge labels kept apart


def test_human_labels_agree_with_rule_judge_in_stats(store):
    _pairs(store, 6)
    svc = LabelService(store, Suggester(store, RuleJudge(), hide_fraction=0.0), LabelConfig())
    screen = svc.current("ann")
    while screen is not None:
        side = "A" if screen.text_left.startswith("Severity") else "B"
        screen = svc.vote("ann", screen.pair_id, side, suggestion_shown=True)
    fig = labelling_stats(store.label_frame(), store.verdict_frame())["judge_human_agreement"][
        "suggestion_shown"
    ]
    assert fig["n"] == 6 and fig["accuracy"] == 1.0


class FakeBatchJudge(RuleJudge):
    """A rule judge that answers through a Message-Batches-shaped API and records what it was sent."""

    name = "anthropic"
    model = "fake-opus"
    label = "fake batch judge"

    def __init__(self):
        super().__init__()
        self.calls = []

    def wait_batch(self, batch_id, *, poll_interval, progress=None):
        raise AssertionError("nothing to resume")

    def run_batch(self, items, *, poll_interval, progress=None, on_submit=None):
        from dataclasses import replace

        self.calls.append([i.custom_id for i in items])
        on_submit("msgbatch_1")
        out = {}
        for item in items:
            verdict = self.judge_pair(item.prompt, item.a, item.b, gold=item.gold)
            ab = replace(verdict.ab, judge=self.name, model=self.model, batch_id="msgbatch_1")
            ba = replace(verdict.ba, judge=self.name, model=self.model, batch_id="msgbatch_1")
            out[item.custom_id] = type(verdict).combine(ab, ba)
        return out


def test_batch_judging_ingests_every_pair_with_its_batch_id(store):
    _pairs(store, 5)
    judge = FakeBatchJudge()
    report = judge_pending(Suggester(store, judge), batch=True)
    assert judge.calls == [[f"pair{i}" for i in range(1, 6)]]
    assert report.judged == 5 and report.consistent == 5 and report.batch_id == "msgbatch_1"
    frame = store.verdict_frame()
    assert len(frame) == 10 and set(frame["batch_id"]) == {"msgbatch_1"}
    assert judge_pending(Suggester(store, judge), batch=True).judged == 0


def test_batch_needs_the_anthropic_judge(store):
    from common.errors import UserInputError

    _pairs(store, 1)
    with pytest.raises(UserInputError, match="--batch"):
        judge_pending(Suggester(store, RuleJudge()), batch=True)
