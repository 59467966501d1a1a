"""Typed rows: JSON columns decode the same way for every table, and a missing row reads as None."""

from common.serving import Serving
from store import Store, VerdictRow


def test_json_columns_decode_with_their_empty_values(store: Store):
    model = store.add_model("served", "", [], "base", serving=Serving("http://x/v1", "m"))
    assert model.adapters == [] and model.endpoint == "http://x/v1"

    job = store.get_job(store.create_job("eval", {}))
    assert job.params == {} and job.result is None
    store.update_job(job.id, status="done", result={})
    assert store.get_job(job.id).result == {}  # an empty result stays a dict, it does not become None

    run = store.create_run("sft", {}, dataset_hash=None, model_id=None, ref_model_id=None)
    assert run.config == {} and run.result is None
    assert store.update_run(run.id, status="done", result={"loss": 1.5}).result == {"loss": 1.5}

    eval_id = store.add_eval_run(["served"], "heldout", {}, [])
    (listed,) = store.list_eval_runs()
    assert listed == store.get_eval_run(eval_id)
    assert (listed.variants, listed.config) == (["served"], {})

    prompt_id = store.add_prompt([{"role": "user", "content": "hi"}], "test", "train", gold={"answer": 1})
    prompt = store.get_prompt(prompt_id)
    assert (prompt.messages, prompt.gold, prompt.meta) == (
        [{"role": "user", "content": "hi"}],
        {"answer": 1},
        None,
    )


def test_missing_rows_read_as_none(store: Store):
    assert store.get_prompt(1) is None
    assert store.get_job(1) is None
    assert store.latest_job("eval") is None
    assert store.get_run(1) is None
    assert store.get_eval_run(1) is None
    assert store.get_model("nobody") is None


def test_verdicts_read_back_as_written(store: Store, make_pair):
    pair_id = make_pair(store, "which?")
    written = [
        VerdictRow(pair_id, "rule", None, "r1", "ab", "a", "because", 0.5, {"input_tokens": 3}),
        VerdictRow(pair_id, "rule", None, "r1", "ba", "b", None, None, None, "batch-1"),
    ]
    store.add_verdicts(written)
    assert store.verdicts_for_pair(pair_id, "rule", None, "r1") == written
    assert store.verdicts_for_pair(pair_id, "rule", "other", "r1") == []


def test_jobs_and_runs_say_whether_they_are_active_or_finished(store: Store):
    job = store.get_job(store.create_job("eval", {}))
    run = store.create_run("dpo", {}, dataset_hash=None, model_id=None, ref_model_id=None)
    assert (job.active, job.finished, run.active, run.finished) == (True, False, True, False)
    store.update_job(job.id, status="cancelled")
    run = store.update_run(run.id, status="failed", error="boom")
    job = store.get_job(job.id)
    assert (job.active, job.finished, run.active, run.finished) == (False, True, False, True)
