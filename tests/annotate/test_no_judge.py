"""No suggestion that cannot be made: without an API key the rule judge abstains on data it does not understand."""

from __future__ import annotations

import json

from annotate.judging import judge_pending
from annotate.pref_import import import_preferences
from annotate.service import AnnotateService
from annotate.stats import labelling_stats
from annotate.ui import suggestion_html
from common.context import AppConfig, build_context

HH_ROWS = [
    {
        "chosen": f"\n\nHuman: How do I keep basil alive indoors? ({i})\n\nAssistant: Give it sun and water it.",
        "rejected": f"\n\nHuman: How do I keep basil alive indoors? ({i})\n\nAssistant: Basil is a plant.",
    }
    for i in range(6)
]


def test_hh_pairs_without_a_key_get_no_verdicts_no_suggestion_and_no_agreement_figures(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    source = tmp_path / "hh.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in HH_ROWS), encoding="utf-8")
    ctx = build_context(AppConfig(home=tmp_path / "home"))
    try:
        report = import_preferences(ctx.store, str(source))
        assert report.format == "hh-rlhf" and report.inserted == 6
        assert ctx.store.queue_model_pairs_for_review(report.model) == 6
        svc = AnnotateService(ctx)

        screen = svc.current("ann")
        head, rationale = suggestion_html(screen, False)
        assert "No judge applies to this pair" in head and "ANTHROPIC_API_KEY" in head
        assert "suggests" not in head and rationale == ""
        # The bulk `judge` command skips them too, and says why.
        bulk = judge_pending(svc.suggester)
        assert (bulk.judged, bulk.abstained) == (0, 6)
        assert "ANTHROPIC_API_KEY" in bulk.summary(svc.suggester.label)

        voted = 0
        while screen is not None:
            assert "No judge applies" in suggestion_html(screen, False)[0]
            # The page reports what it showed; no suggestion existed, so none may be recorded as shown.
            screen = svc.vote("ann", screen.pair_id, "A", suggestion_shown=True)
            voted += 1
        assert voted == 6
        assert ctx.store.counts()["judge_verdicts"] == 0
        humans = ctx.store.label_frame().query("source == 'human'")
        assert len(humans) == 6 and humans["suggestion"].isna().all() and not humans["suggestion_shown"].any()
        stats = labelling_stats(ctx.store.label_frame(), ctx.store.verdict_frame())
        assert stats["judge_human_agreement"]["suggestion_shown"]["n"] == 0
        assert stats["judge_human_agreement"]["suggestion_hidden"]["n"] == 0
        assert stats["override_rate"] is None and stats["judges"] == {}
    finally:
        ctx.store.close()
