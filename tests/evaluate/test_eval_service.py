"""The N-way eval on tiny models: every cell filled, stored in DuckDB, reloadable, with its context notes."""

from __future__ import annotations

import math

import pytest

from common.errors import UserInputError
from evaluate.eval_report import write_report
from evaluate.eval_service import (
    EvalCancelled,
    EvalRequest,
    default_variants,
    eval_choices,
    eval_job_status,
    load_eval,
    run_eval,
    sample,
    sample_choices,
    start_eval_job,
)
from evaluate.scorers import default_scorers
from models.judge import RuleJudge
from tests.evaluate import test_eval_support as support

# The shared fixtures, made visible to pytest in this module.
eval_tokenizer_dir = support.eval_tokenizer_dir
eval_store = support.eval_store
eval_ctx = support.eval_ctx
add_judge_labels, small_params = support.add_judge_labels, support.small_params

# The eval table's rows: the default scorers' names (tests/evaluate/test_scorers.py pins them).
ROWS = [s.name for s in default_scorers(RuleJudge(), "sft")]
VARIANTS = ["base", "sft", "sft+dpo@1"]


def _cells(markdown: str) -> list[list[str]]:
    """The body cells of the markdown table."""
    lines = [x for x in markdown.splitlines() if x.startswith("| ")]
    return [[c.strip() for c in x.strip("|").split(" | ")] for x in lines[1:]]


def test_eval_on_tiny_models_fills_every_cell_stores_it_and_reloads_the_same_table(eval_ctx, tmp_path):
    store = eval_ctx.store
    steps = []
    result = run_eval(
        eval_ctx, None, limit=6, params=small_params(), progress=lambda d, t: steps.append((d, t))
    )

    assert result.variants == VARIANTS  # defaults: base, sft and the newest sft+dpo@*
    assert list(result.table.columns) == [*VARIANTS, "Δ sft+dpo@1 over sft"]
    assert list(result.table.index) == ROWS
    md = result.markdown()
    print(md)
    assert "| Metric (scorer) | base | sft | sft+dpo@1 | Δ sft+dpo@1 over sft |" in md
    body = _cells(md)
    assert len(body) == 6 and all(len(row) == 5 for row in body)
    for row in body:
        for cell in row[1:]:
            assert cell and cell != "n/a" and "nan" not in cell.lower(), row
            assert "[" in cell and "n=" not in cell  # mean [low, high] over all 6 prompts
    assert result.stats[["estimate", "low", "high"]].notna().all().all()
    assert steps[-1] == (24, 24)  # 3 variants x 6 prompts generated, then 6 prompts scored

    # The numbers are the outputs' numbers: mean length per variant equals the stored generations'.
    scores = store.eval_scores_frame(result.eval_run_id)
    assert len(scores) == 6 * 3 * 6
    assert store.cursor().execute("SELECT count(*) FROM eval_runs").fetchone()[0] == 1
    for v in VARIANTS:
        texts = [sample(store, result.eval_run_id, pid)["outputs"][v] for pid in result.prompt_ids]
        mean_len = sum(len(t.split()) for t in texts) / len(texts)
        assert result.stats.query("metric == @ROWS[2] and column == @v")["estimate"].item() == pytest.approx(
            mean_len
        )
    # SFT against itself is a tie by definition.
    assert result.table.loc[ROWS[5], "sft"] == "0.50 [0.50, 0.50]"
    # The tiny variants really differ, so the table compares different outputs.
    one = sample(store, result.eval_run_id, result.prompt_ids[0])
    assert len(set(one["outputs"].values())) == 3

    md_path, png = write_report(result, tmp_path / "out")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert md_path.read_text().startswith(f"Eval #{result.eval_run_id}")

    again = load_eval(store, result.eval_run_id)
    assert again.table.equals(result.table)
    assert again.markdown() == md


def test_sample_viewer_shows_the_prompt_and_every_variant(eval_ctx):
    result = run_eval(eval_ctx, VARIANTS, limit=2, params=small_params())
    choices = sample_choices(eval_ctx.store, result.eval_run_id)
    assert [pid for _, pid in choices] == result.prompt_ids
    assert choices[0][0].startswith(f"#{result.prompt_ids[0]} Incident 0")
    s = sample(eval_ctx.store, result.eval_run_id, result.prompt_ids[0])
    assert "Incident 0" in s["prompt"] and s["gold"].startswith("Severity: SEV1")
    assert list(s["outputs"]) == VARIANTS and all(s["outputs"].values())
    assert set(s["scores"]["sft"]) == set(ROWS)
    assert eval_choices(eval_ctx.store)[0][1] == result.eval_run_id
    with pytest.raises(UserInputError, match="did not score prompt"):
        sample(eval_ctx.store, result.eval_run_id, 10_000)


def test_circularity_note_only_when_the_same_judge_labelled_before_the_adapter(eval_ctx):
    store = eval_ctx.store
    plain = run_eval(eval_ctx, VARIANTS, limit=2, params=small_params())
    assert "circular" not in plain.markdown() and "†" not in plain.markdown()

    # Another judge's labels do not make the rule judge's numbers circular.
    add_judge_labels(store, "judge:anthropic:claude-opus-4-7")
    other = run_eval(eval_ctx, VARIANTS, limit=2, params=small_params())
    assert "circular" not in other.markdown()

    # The rule judge's own labels, made after sft+dpo@1 was registered, cannot have trained it...
    add_judge_labels(store, "judge:rule", n=3)
    later = run_eval(eval_ctx, VARIANTS, limit=2, params=small_params())
    assert "circular" not in later.markdown()

    # ...but they can have trained an adapter registered after them.
    store.add_model("sft+dpo@2", "tiny-base", ["sft-adapter", "dpo-2"], "dpo")
    assert default_variants(store) == ["base", "sft", "sft+dpo@2"]
    circular = run_eval(eval_ctx, None, limit=2, params=small_params())
    md = circular.markdown()
    assert "partly circular" in md and "judge:rule" in md and "3 live preference label(s)" in md
    marked = [m for m in circular.table.index if m.endswith("†")]
    # Only rows the judge itself scored: the rule-based faithfulness proxy is not the rule judge's preference.
    assert marked == [ROWS[5] + " †"]
    assert load_eval(store, circular.eval_run_id).markdown() == md


def test_arena_result_and_judge_human_agreement_sit_beside_the_table(eval_ctx):
    store = eval_ctx.store
    first = run_eval(eval_ctx, VARIANTS, limit=2, params=small_params())
    assert "no votes between sft+dpo@1 and sft yet" in first.markdown()
    assert "Judge–human agreement: no labels yet." in first.markdown()

    # Three blind votes, two for the DPO variant (once on each side), one for SFT.
    pid = first.prompt_ids[0]
    sft_gen, dpo_gen = (
        store.done_cells(store.get_model(v).id, [pid])[(pid, first.config["cell"])] for v in VARIANTS[1:]
    )
    for left, right, vote in [
        (dpo_gen, sft_gen, "left"),
        (sft_gen, dpo_gen, "right"),
        (sft_gen, dpo_gen, "left"),
    ]:
        store.cursor().execute(
            "INSERT INTO battles (prompt_id, left_gen, right_gen, seed, voter, vote) VALUES (?, ?, ?, 0, 'ann', ?)",
            [pid, left, right, vote],
        )
    # A human who saw the judge's suggestion and followed it.
    pair = store.add_pair(pid, sft_gen, dpo_gen)
    store.add_label(pair, "ann", "b", suggestion="b", suggestion_shown=True)

    md = load_eval(store, first.eval_run_id).markdown()
    assert "Human arena (blind votes): sft+dpo@1 beats sft 66.7%" in md
    assert "suggestion shown: 100.0% of 1 labels" in md


def fake_claude(*, faithfulness: int, winner: str):
    """A fake Anthropic API: every faithfulness request scores `faithfulness`, every pairwise one picks `winner`."""
    import json

    import httpx2

    from tests.models.test_judge_support import FakeAPI, message_json

    def reply(request):
        body = json.loads(request.content)
        if "score" in body["output_config"]["format"]["schema"]["properties"]:
            score = {"rationale": "ok", "score": faithfulness}
            return httpx2.Response(200, json=message_json(text=json.dumps(score)))
        return httpx2.Response(200, json=message_json(winner=winner))

    return FakeAPI(default=reply)


def test_anthropic_judge_rows_name_claude_and_use_its_scores(eval_ctx):
    # Always "Response 1": position-inconsistent, so every non-reference variant ties.
    api = fake_claude(faithfulness=4, winner="1")
    result = run_eval(eval_ctx, VARIANTS, limit=2, params=small_params(), judge=api.judge())
    assert "faithfulness 1–5 (Claude Opus (claude-opus-4-7))" in result.table.index
    assert result.table.loc["faithfulness 1–5 (Claude Opus (claude-opus-4-7))", "base"] == "4.00 [4.00, 4.00]"
    assert result.table.loc[
        "preference vs sft (Claude Opus (claude-opus-4-7), both orders)", "sft+dpo@1"
    ] == ("0.50 [0.50, 0.50]")
    # 2 prompts: 3 faithfulness requests each, and 2 orders for each of base and sft+dpo@1 vs sft.
    assert len(api.message_calls) == 2 * (3 + 2 * 2)


def test_eval_refuses_too_few_variants_and_an_empty_prompt_set(eval_ctx, tmp_path):
    from store import Store

    with pytest.raises(UserInputError, match="no variant named 'nope'"):
        run_eval(eval_ctx, ["sft", "nope"], params=small_params())
    with pytest.raises(UserInputError, match="at least two variants"):
        run_eval(eval_ctx, ["sft"], params=small_params())
    with Store.open(tmp_path / "lonely.duckdb") as lonely:
        lonely.add_model("base", "tiny-base", [], "base")
        eval_ctx.store = lonely
        with pytest.raises(UserInputError, match="at least two variants, found base"):
            run_eval(eval_ctx, None)
        lonely.add_model("sft", "tiny-base", [], "sft")
        with pytest.raises(UserInputError, match="no heldout prompts"):
            run_eval(eval_ctx, None)


def test_a_stopped_eval_stores_nothing(eval_ctx):
    with pytest.raises(EvalCancelled):
        run_eval(eval_ctx, VARIANTS, limit=2, params=small_params(), should_stop=lambda: True)
    assert eval_ctx.store.list_eval_runs() == []


def test_eval_job_runs_in_the_background_and_reports_its_run(eval_ctx):
    job_id = start_eval_job(
        eval_ctx, EvalRequest(variants=("sft", "sft+dpo@1"), limit=2, judge="rule", params=small_params())
    )
    eval_ctx.jobs.wait(job_id, timeout=120)
    status = eval_job_status(eval_ctx.store)
    assert status["status"] == "done", status
    result = load_eval(eval_ctx.store, status["eval_run_id"])
    assert result.variants == ["sft", "sft+dpo@1"] and result.reference == "sft"
    assert f"eval run #{result.eval_run_id}" in status["text"]
    assert not any(math.isnan(x) for x in result.stats["estimate"])
    with pytest.raises(UserInputError, match="prompt set"):
        EvalRequest(prompt_set="test")


def test_a_variant_that_answers_like_the_gold_wins_every_row_and_the_delta_says_so(eval_ctx):
    eval_ctx.store.add_model("sft+dpo@gold", "tiny-base", ["sft-adapter", "dpo-gold"], "dpo")
    result = run_eval(eval_ctx, ["sft", "sft+dpo@gold"], limit=4, params=small_params())
    t = result.table
    delta = "Δ sft+dpo@gold over sft"
    for row in ROWS[:2] + ROWS[3:4]:
        assert t.loc[row, "sft+dpo@gold"] == "1.00 [1.00, 1.00]"
        assert t.loc[row, delta] == "+1.00 [+1.00, +1.00]"
    # The gold summary's facts (ShipRoute, EU, 17:00, AEST) are all in the report.
    assert t.loc[ROWS[4], "sft+dpo@gold"] == "5.00 [5.00, 5.00]"
    est = result.stats.set_index(["metric", "column"])["estimate"]
    assert est[(ROWS[4], delta)] == pytest.approx(5.0 - est[(ROWS[4], "sft")])
    assert t.loc[ROWS[5], "sft+dpo@gold"] == "1.00 [1.00, 1.00]"
    assert t.loc[ROWS[5], delta] == "+0.50 [+0.50, +0.50]"


def test_claude_rows_are_marked_circular_when_claude_labels_predate_the_adapter(eval_ctx):
    add_judge_labels(eval_ctx.store, "judge:anthropic:claude-opus-4-7")
    eval_ctx.store.add_model("sft+dpo@2", "tiny-base", ["sft-adapter", "dpo-2"], "dpo")
    judge = fake_claude(faithfulness=5, winner="tie").judge()
    result = run_eval(eval_ctx, ["sft", "sft+dpo@2"], limit=1, params=small_params(), judge=judge)
    assert [m for m in result.table.index if m.endswith("†")] == [
        "faithfulness 1–5 (Claude Opus (claude-opus-4-7)) †",
        "preference vs sft (Claude Opus (claude-opus-4-7), both orders) †",
    ]
    assert "annotator `judge:anthropic:claude-opus-4-7`" in result.markdown()
