"""Reference log-probs scored by the worker on its own devices, offline, ingested into the cache when a run ends."""

from __future__ import annotations

import json

import pytest

from tests.train.dpo_fixtures import in_process, make_ctx, tiny_config, tiny_sft, triples  # noqa: F401
from train.rundir import RunDir
from train.service import run_training


@pytest.fixture
def ctx(tmp_path, tiny_sft):  # noqa: F811
    context = make_ctx(tmp_path / "home", tiny_sft, n_triples=16)
    yield context
    context.store.close()


class ReferenceForwards:
    """Counts forwards of the worker's model between loading it and building the trainer: the reference pass."""

    def __init__(self):
        self.counts: list[int] = []
        self._live = [0]
        self._open = False

    def on_reference(self, local) -> None:
        self._live[0] = 0
        self._open = True

        def hook(*args):
            if self._open:
                self._live[0] += 1

        local.model.register_forward_hook(hook)

    def on_trainer(self, trainer) -> None:
        self._open = False
        self.counts.append(self._live[0])


def test_worker_scores_the_misses_and_a_second_run_makes_zero_reference_forwards(ctx):
    forwards = ReferenceForwards()
    launcher = in_process(forwards.on_trainer, on_reference=forwards.on_reference)
    first = run_training(ctx, tiny_config(max_steps=2, kl_every=0), launcher=launcher)
    assert first.status == "done", first.error
    # The serving process loaded no model: the worker scored the 32 responses and the parent ingested them.
    assert ctx.generator.where("sft") is None and ctx.generator.where("base") is None
    assert forwards.counts[0] > 0 and first.summary["ref_computed"] == 32 and first.summary["ref_hits"] == 0
    assert ctx.store.count_ref_logps() == 32
    assert (RunDir(first.run_dir) / "ref_new.jsonl").is_file()

    second = run_training(ctx, tiny_config(beta=0.5, max_steps=2, kl_every=0), launcher=launcher)
    assert second.status == "done", second.error
    assert forwards.counts[1] == 0
    assert (second.summary["ref_hits"], second.summary["ref_computed"]) == (32, 0)
    assert ctx.store.count_ref_logps() == 32


def test_a_failed_run_still_leaves_its_reference_log_probs_in_the_cache(ctx):
    def crash(trainer):
        raise RuntimeError("out of memory, say")

    result = run_training(ctx, tiny_config(max_steps=2, kl_every=0), launcher=in_process(crash))
    assert result.status == "failed" and "out of memory" in result.error
    assert ctx.store.count_ref_logps() == 32  # scored before the crash, valid all the same


def test_worker_values_equal_the_direct_scorer(ctx, tiny_sft):  # noqa: F811
    """The cached values that reach the trainer are the SFT variant's own log-probs (float64, exact)."""
    from train.worker import read_rows

    result = run_training(ctx, tiny_config(max_steps=1, kl_every=0), launcher=in_process())
    assert result.status == "done", result.error
    rows = read_rows(RunDir(result.run_dir) / "train.parquet")
    sft = ctx.generator.get("sft")
    direct = sft.score([r["prompt"] for r in rows], [r["rejected"] for r in rows])
    key = result.summary["ref_model_fingerprint"]
    assert key == sft.fingerprint
    from train.refcache import ref_key

    cached = ctx.store.get_ref_logps(
        ref_key(sft, 1024, "keep_start"), [(r["prompt_hash"], r["rejected_hash"]) for r in rows]
    )
    assert [cached[(r["prompt_hash"], r["rejected_hash"])] for r in rows] == pytest.approx(direct, abs=1e-9)


def test_worker_environment_is_offline_and_holds_no_secret(tmp_path, monkeypatch):
    import subprocess

    from train import process

    seen = {}

    class FakePopen:
        def __init__(self, command, **kwargs):
            seen.update(kwargs["env"])

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    process.spawn_worker(tmp_path)
    assert seen["HF_HUB_OFFLINE"] == "1"
    assert seen["HF_HOME"] == str(tmp_path / "hf")  # the worker finds what the parent downloaded
    assert "HF_TOKEN" not in seen and "ANTHROPIC_API_KEY" not in seen
    assert not any("secret" in value for value in seen.values())


def test_the_parent_downloads_a_hub_model_before_the_worker_and_converts_the_default(tmp_path, monkeypatch):
    import huggingface_hub

    from common.errors import ModelError
    from models.fetch import ensure_local
    from models.local import Variant

    calls = []

    def fake_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        folder = tmp_path / "snap"
        folder.mkdir(exist_ok=True)
        (folder / "model.safetensors").write_text("x")
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    ensure_local(Variant("sft", "acme/sft-model"), cache_dir=tmp_path)
    assert calls and calls[0][0] == "acme/sft-model"
    assert "*.safetensors" in calls[0][1]["allow_patterns"]
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    (local_dir / "config.json").write_text("{}")
    calls.clear()
    ensure_local(Variant("sft", str(local_dir)), cache_dir=tmp_path)
    assert calls == []  # a local folder needs nothing

    converted = []
    import models.gguf_cache as gguf_cache

    monkeypatch.setattr(gguf_cache, "ensure_default_cache", lambda d: converted.append(d) or tmp_path)
    ensure_local(Variant("base", "smollm2-135m-instruct"), cache_dir=tmp_path / "models")
    assert converted == [tmp_path / "models"]

    def offline(repo_id, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("token hf_secret_value rejected\nmore")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelError) as info:
        ensure_local(Variant("sft", "acme/other"), cache_dir=tmp_path)
    assert "acme/other" in str(info.value) and "\n" not in str(info.value)


def test_shared_prompt_prefill_equals_plain_scoring_and_trl_reference(tiny_sft, tmp_path):  # noqa: F811
    """Prompt tokens run once per prompt: same numbers as scoring each response alone and as TRL's own pass."""
    import copy

    from tests.train.test_dpo_trainer import load_sft
    from train.refcache import score_responses
    from train.snapshot import canonical_messages
    from train.worker import lora_config, to_dataset

    sft = load_sft(tiny_sft)
    data = triples(6)
    # A long shared system prompt, as real prompts have, and one response that begins like the chosen one.
    system = {"role": "system", "content": " ".join(["you are a helpful assistant"] * 8)}
    prompts = [canonical_messages([system, *p]) for p, _, _ in data]
    chosen = [c for _, c, _ in data]
    rejected = [r for _, _, r in data]
    rejected[0] = chosen[0] + " and more"
    items = [(p, c) for p, c in zip(prompts, chosen, strict=True)]
    items += [(p, r) for p, r in zip(prompts, rejected, strict=True)]

    tokens = [0]
    handle = sft.model.register_forward_pre_hook(
        lambda module, args, kwargs: tokens.__setitem__(0, tokens[0] + kwargs["input_ids"].numel()),
        with_kwargs=True,
    )
    shared = score_responses(sft, items, max_length=1024, truncation_mode="keep_start", batch_size=4)
    shared_tokens, tokens[0] = tokens[0], 0
    plain = sft.score([p for p, _ in items], [r for _, r in items], batch_size=4)
    plain_tokens = tokens[0]
    handle.remove()
    assert shared == pytest.approx(plain, abs=1e-9)
    assert shared_tokens < 0.75 * plain_tokens  # the system prompt ran once per pair, not twice

    # TRL's own reference pass over the same pairs (precompute_ref_log_probs, adapter disabled = the SFT model).
    from trl import DPOTrainer

    cfg = tiny_config(output_dir=str(tmp_path / "trl"), eval_strategy="no")
    trl_args = copy.deepcopy(cfg)
    trl_args.precompute_ref_log_probs = True
    records = [
        {"prompt": p, "chosen": c, "rejected": r} for p, c, r in zip(prompts, chosen, rejected, strict=True)
    ]
    trainer = DPOTrainer(
        model=load_sft(tiny_sft).model,
        args=trl_args,
        train_dataset=to_dataset(records, with_ref=False),
        processing_class=sft.tokenizer,
        peft_config=lora_config(cfg),
    )
    theirs = list(trainer.train_dataset["ref_chosen_logps"]) + list(
        trainer.train_dataset["ref_rejected_logps"]
    )
    assert shared == pytest.approx(theirs, abs=1e-4)


def test_truncated_pairs_are_counted_at_max_length(tiny_sft):  # noqa: F811
    from tests.train.test_dpo_trainer import load_sft
    from train.refcache import count_truncated

    tokenizer = load_sft(tiny_sft).tokenizer
    prompt = [{"role": "user", "content": "tell a story"}]
    rows = [
        {"prompt": prompt, "chosen": " ".join(["cat"] * n), "rejected": " ".join(["dog"] * (12 - n))}
        for n in range(1, 12)
    ]

    def length(response):  # tokens of prompt + response, rendered independently of PrefLab's scorer
        chat = [*prompt, {"role": "assistant", "content": response}]
        return len(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"])

    longest = [max(length(r["chosen"]), length(r["rejected"])) for r in rows]
    limit = sorted(longest)[5]
    expected = sum(1 for n in longest if n > limit)
    assert 0 < expected < len(rows)
    found = count_truncated(tokenizer, rows, max_length=limit)
    assert found == {"truncated_pairs": expected, "pairs": len(rows), "longest_pair": max(longest)}
    assert count_truncated(tokenizer, rows, max_length=None)["truncated_pairs"] == 0


def test_a_run_reports_how_many_pairs_were_truncated(ctx):
    result = run_training(ctx, tiny_config(max_steps=1, kl_every=0, max_length=40), launcher=in_process())
    assert result.status == "done", result.error
    truncated = result.summary["truncated_pairs"]
    assert 0 < truncated < 16 and result.summary["max_length"] == 40
    assert ctx.store.get_run(result.run_id).result["truncated_pairs"] == truncated
    report = (RunDir(result.run_dir) / "report.md").read_text()
    assert f"truncated at max_length 40: {truncated} of 16 pairs" in report
    from train.ui import truncation_line

    assert truncation_line(ctx.store.get_run(result.run_id)) == (
        f"{truncated} of 16 pairs truncated at max_length 40 (longest {result.summary['longest_pair']} tokens)"
    )
    assert json.loads((RunDir(result.run_dir) / "reference.json").read_text())["truncated_pairs"] == truncated
