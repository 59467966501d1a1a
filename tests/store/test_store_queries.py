"""Typed queries: models, prompts, and the preference_triples view the trainer reads."""

import duckdb
import pytest

from common.errors import StoreError
from store import ModelRow, Store


def test_models_add_get_list(store: Store):
    sft = store.add_model("sft", "HuggingFaceTB/SmolLM2-135M-Instruct", ["/adapters/sft"], "sft")
    base = store.add_model("base", "HuggingFaceTB/SmolLM2-135M-Instruct", [], "base", fingerprint="f0")
    assert isinstance(sft, ModelRow)
    assert (sft.name, sft.adapters, sft.kind, sft.fingerprint) == ("sft", ["/adapters/sft"], "sft", None)
    assert sft.created_at is not None
    assert store.get_model("sft") == sft
    assert store.get_model("nope") is None
    assert [m.name for m in store.list_models()] == ["sft", "base"]
    assert store.list_models()[1] == base


def test_adding_a_model_name_twice_is_one_clear_line(store: Store):
    store.add_model("sft", "base-a", [], "sft")
    with pytest.raises(StoreError) as info:
        store.add_model("sft", "base-b", ["x"], "sft")
    assert "\n" not in str(info.value)
    assert "'sft' already exists" in str(info.value)
    assert store.get_model("sft").base == "base-a"  # the first one is untouched


def test_a_bad_model_kind_names_the_allowed_ones(store: Store):
    with pytest.raises(StoreError, match="base, sft, dpo, imported; got 'lora'"):
        store.add_model("x", "b", [], "lora")
    assert store.list_models() == []


def test_ensure_model_inserts_once(store: Store):
    first = store.ensure_model("sft", "b", ["a1", "a2"], "sft")
    again = store.ensure_model("sft", "b", ["a1", "a2"], "sft")
    assert first == again
    assert first.adapters == ["a1", "a2"]  # adapter order is part of the variant
    assert len(store.list_models()) == 1


def test_updates_work_on_rows_other_rows_reference(store: Store, make_pair):
    # DuckDB's FK limitations can break UPDATEs of referenced rows; these are the ones PrefLab does.
    pair = make_pair(store, "referenced")
    row = store.set_model_fingerprint("sft", "sha256:abc")
    assert row.fingerprint == "sha256:abc"
    assert store.get_model("sft").fingerprint == "sha256:abc"
    assert store.ensure_model("sft", "tiny-base", ["sft-adapter"], "sft").fingerprint == "sha256:abc"
    with pytest.raises(StoreError, match="no model named 'ghost'"):
        store.set_model_fingerprint("ghost", "x")

    def run_lifecycle(cur):
        model_id = store.get_model("sft").id
        run_id = cur.execute(
            "INSERT INTO runs (kind, model_id, ref_model_id) VALUES ('dpo', ?, ?) RETURNING id",
            [model_id, model_id],
        ).fetchone()[0]
        cur.execute("INSERT INTO run_metrics VALUES (?, 1, 'train', 'loss', 0.69)", [run_id])
        cur.execute("UPDATE runs SET status = 'done', adapter_path = 'runs/1/adapter' WHERE id = ?", [run_id])
        job_id = cur.execute(
            "INSERT INTO jobs (kind, total) VALUES ('generate', 10) RETURNING id"
        ).fetchone()[0]
        cur.execute("UPDATE jobs SET progress = 10, status = 'done' WHERE id = ?", [job_id])
        cur.execute("INSERT INTO assignments (pair_id, annotator) VALUES (?, 'ann')", [pair])
        cur.execute("UPDATE assignments SET released_at = current_timestamp WHERE pair_id = ?", [pair])
        return run_id

    run_id = store.write(run_lifecycle)
    status = store.cursor().execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
    assert status == ("done",)
    first = store.add_label(pair, "ann", "a")
    second = store.add_label(pair, "ann", "b")  # supersedes `first`: an UPDATE of labels
    labels = store.labels_for_pair(pair)
    assert [(lb.id, lb.superseded_by) for lb in labels] == [(first, second), (second, None)]


def test_prompts_are_unique_by_content(store: Store):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}]
    first = store.add_prompt(messages, "demo", "train", gold={"answer": "4"}, meta={"topic": "math"})
    assert isinstance(first, int)
    assert store.add_prompt([dict(m) for m in messages], "other-file", "heldout") is None
    prompt = store.get_prompt(first)
    assert prompt.messages == messages
    assert (prompt.source, prompt.split, prompt.gold, prompt.meta) == (
        "demo",
        "train",
        {"answer": "4"},
        {"topic": "math"},
    )
    assert store.counts()["prompts"] == 1
    with pytest.raises(StoreError, match="split must be one of train, heldout; got 'test'"):
        store.add_prompt([{"role": "user", "content": "x"}], "demo", "test")


def test_a_failed_write_leaves_nothing_behind(store: Store):
    def half_then_fail(cur):
        cur.execute(
            "INSERT INTO prompts (content_hash, messages, source, split) VALUES ('h', '[]', 's', 'train')"
        )
        raise ValueError("boom")

    with pytest.raises(ValueError):
        store.write(half_then_fail)
    assert store.counts()["prompts"] == 0


@pytest.mark.parametrize("where", ["statement", "commit"])
def test_a_disk_error_during_a_write_is_one_line_and_keeps_earlier_commits(store: Store, make_pair, where):
    pair = make_pair(store, "kept")
    kept = store.add_label(pair, "ann", "a")
    disk_full = duckdb.IOException(
        'IO Error: Could not write all bytes to file "x.wal": No space left on device'
    )

    def write_then_fail(cur):
        cur.execute(
            "INSERT INTO labels (pair_id, annotator, source, decision) VALUES (?, 'bob', 'human', 'b')",
            [pair],
        )
        if where == "statement":
            raise disk_full

    real = store.cursor()

    class CommitFails:
        def execute(self, sql, *args):
            if sql == "COMMIT" and where == "commit":
                raise disk_full
            return real.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(real, name)

    failing = CommitFails()
    store.cursor = lambda: failing  # this test's store only
    with pytest.raises(StoreError) as info:
        store.write(write_then_fail)
    del store.cursor
    message = str(info.value)
    assert "\n" not in message and message.startswith("could not save to the database: IO Error")
    assert "No space left on device" in message and "earlier work is kept" in message
    rows = store.cursor().execute("SELECT id, annotator FROM labels").fetchall()
    assert rows == [(kept, "ann")]  # nothing half-written, nothing earlier lost


def test_preference_triples_hold_the_latest_live_label(store: Store, make_pair):
    revoted = make_pair(store, "re-vote", "A1", "B1")
    skipped = make_pair(store, "skip", "A2", "B2")
    edited = make_pair(store, "edit", "A3", "B3")
    tied = make_pair(store, "tie", "A4", "B4")
    undone = make_pair(store, "undo", "A5", "B5")
    untouched = make_pair(store, "untouched", "A6", "B6")

    store.add_label(revoted, "ann", "a")
    latest = store.add_label(revoted, "ann", "b", left_gen=None, seed=7)
    store.add_label(revoted, "other", "a", source="judge")
    store.add_label(skipped, "ann", "a")
    store.add_label(skipped, "ann", "skip")
    store.add_label(edited, "ann", "b", chosen_edit="B3, but better")
    store.add_label(tied, "ann", "tie")
    store.withdraw_label(store.add_label(undone, "ann", "a"))

    triples = {(t.pair_id, t.annotator): t for t in store.preference_triples()}
    assert set(triples) == {(revoted, "ann"), (revoted, "other"), (edited, "ann"), (tied, "ann")}
    assert untouched not in {p for p, _ in triples}

    mine = triples[(revoted, "ann")]
    assert (mine.label_id, mine.decision, mine.chosen, mine.rejected, mine.source) == (
        latest,
        "b",
        "B1",
        "A1",
        "human",
    )
    assert mine.prompt == [{"role": "user", "content": "re-vote"}]
    assert mine.split == "train" and mine.created_at is not None
    theirs = triples[(revoted, "other")]
    assert (theirs.decision, theirs.chosen, theirs.rejected, theirs.source) == ("a", "A1", "B1", "judge")

    edit = triples[(edited, "ann")]
    assert (edit.chosen, edit.rejected, edit.edited) == ("B3, but better", "A3", True)
    assert edit.chosen_gen != edit.rejected_gen

    tie = triples[(tied, "ann")]
    assert (tie.decision, tie.chosen, tie.rejected) == ("tie", "A4", "B4")

    assert store.counts()["preference_triples"] == 4
    assert store.preference_triples(split="heldout") == []


def test_the_view_prefers_the_newest_of_several_live_labels(store: Store, make_pair):
    # Imports may write labels without superseding; the view must still pick the newest.
    pair = make_pair(store, "imported twice", "first", "second")

    def insert_two(cur):
        for decision in ("a", "b"):
            cur.execute(
                "INSERT INTO labels (pair_id, annotator, source, decision) VALUES (?, 'imp', 'import', ?)",
                [pair, decision],
            )

    store.write(insert_two)
    (triple,) = store.preference_triples()
    assert (triple.decision, triple.chosen) == ("b", "second")


def test_withdrawing_twice_is_an_error(store: Store, make_pair):
    label = store.add_label(make_pair(store, "p"), "ann", "a")
    store.withdraw_label(label)
    with pytest.raises(StoreError, match=f"label {label} does not exist or was already superseded"):
        store.withdraw_label(label)


def test_counts_cover_the_stats_command(store: Store, make_pair):
    pair = make_pair(store, "counted")
    store.add_label(pair, "ann", "a")
    counts = store.counts()
    assert counts == {
        "prompts": 1,
        "pairs": 1,
        "generations": 2,
        "labels": 1,
        "preference_triples": 1,
        "judge_verdicts": 0,
        "runs": 0,
        "battles": 0,
        "models": 1,
    }


def test_runs_and_jobs_of_a_dead_process_are_marked_failed_but_generation_resumes(store):
    run = store.create_run("sft", {}, dataset_hash=None, model_id=None, ref_model_id=None, status="running")
    train_job = store.create_job("train", {})
    store.update_job(train_job, status="running")
    gen_job = store.create_job("generate", {})
    store.update_job(gen_job, status="running")
    assert store.mark_interrupted() == {"runs": 1, "jobs": 1}
    assert store.get_run(run.id).status == "failed" and "interrupted" in store.get_run(run.id).error
    assert store.get_job(train_job).status == "failed"
    assert store.get_job(gen_job).status == "running"  # the serving process resumes it
    assert store.mark_interrupted() == {"runs": 0, "jobs": 0}


def test_finishing_a_run_registers_its_variant_in_the_same_transaction(store: Store):
    run = store.create_run(
        "sft", {"lr": 1}, dataset_hash=None, model_id=None, ref_model_id=None, status="running"
    )
    done = store.finish_run(
        run.id,
        status="done",
        adapter_path="/a",
        result={"steps": 1},
        register=("sft@1", "base", ["/a"], "sft"),
    )
    assert (done.status, done.adapter_path, done.result) == ("done", "/a", {"steps": 1})
    assert done.ended_at is not None
    assert store.get_model("sft@1").adapters == ["/a"]

    other = store.create_run("sft", {}, dataset_hash=None, model_id=None, ref_model_id=None, status="running")
    with pytest.raises(StoreError, match="already exists"):
        store.finish_run(other.id, status="done", register=("sft@1", "base", [], "sft"))
    assert store.get_run(other.id).status == "running"  # the failed registration took the update with it
    with pytest.raises(StoreError, match="no run with id 999"):
        store.update_run(999, status="running")
