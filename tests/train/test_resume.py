"""`--gradient-checkpointing` reaches TRL, and `train --resume RUN_ID` continues a stopped run from its checkpoint."""

from __future__ import annotations

import argparse

import pytest

from common.errors import UserInputError
from tests.train.dpo_fixtures import in_process, make_ctx, tiny_config, tiny_sft  # noqa: F401
from train.rundir import RunDir
from train.service import resume_training, run_training


@pytest.fixture
def ctx(tmp_path, tiny_sft):  # noqa: F811
    context = make_ctx(tmp_path / "home", tiny_sft, n_triples=16)
    yield context
    context.store.close()


def test_gradient_checkpointing_flag_reaches_the_trainer(ctx):
    from train.cli import add_train_arguments, config_from_args

    parser = add_train_arguments(argparse.ArgumentParser())
    assert config_from_args(parser.parse_args([])).activation_checkpointing is False
    cfg = config_from_args(parser.parse_args(["--gradient-checkpointing"]))
    assert cfg.activation_checkpointing is True
    seen = []

    def look(trainer):
        from transformers import TrainerCallback

        class Look(TrainerCallback):  # the Trainer turns checkpointing on when training starts
            def on_step_end(self, args, state, control, **kwargs):
                base = trainer.model.get_base_model()
                seen.append((args.activation_checkpointing, base.is_activation_checkpointing))

        trainer.add_callback(Look())

    overrides = {"activation_checkpointing": True, "max_steps": 1, "kl_every": 0}
    result = run_training(ctx, tiny_config(**overrides), launcher=in_process(look))
    assert result.status == "done", result.error
    assert seen == [(True, True)]


def test_checkpoints_are_saved_by_default():
    from train.config import build_config

    cfg = build_config({})
    assert cfg.save_strategy == "steps" and 0 < cfg.save_steps < 1 and cfg.save_total_limit == 2


class CrashAfterSave:
    """Raises right after the Trainer saved the checkpoint of `step`: a worker that died mid-run."""

    def __init__(self, step: int):
        self.step = step

    def __call__(self, trainer):
        from transformers import TrainerCallback

        step = self.step

        class Crash(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                if state.global_step == step:
                    raise RuntimeError(f"killed after step {step}")

        trainer.add_callback(Crash())


def test_resume_continues_from_the_last_checkpoint(ctx):
    cfg = tiny_config(max_steps=3, save_steps=1, eval_steps=3, kl_every=0)
    first = run_training(ctx, cfg, launcher=in_process(CrashAfterSave(2)))
    assert first.status == "failed" and "killed after step 2" in first.error
    rd = RunDir(first.run_dir)
    assert (rd / "trainer" / "checkpoint-2").is_dir()

    started = []

    def record(trainer):
        from transformers import TrainerCallback

        class Record(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                pass

            def on_step_end(self, args, state, control, **kwargs):
                started.append(state.global_step)

        trainer.add_callback(Record())

    result = resume_training(ctx, first.run_id, launcher=in_process(record))
    assert result.status == "done", result.error
    assert result.run_id == first.run_id and started == [3]  # one step, picking up after step 2
    run = ctx.store.get_run(first.run_id)
    assert run.status == "done" and run.error is None
    assert ctx.store.get_model(f"sft+dpo@{first.run_id}") is not None
    frame = ctx.store.run_metrics_frame([first.run_id])
    assert sorted(set(frame[frame["split"] == "train"]["step"])) == [1, 2, 3]
    assert result.summary["ref_computed"] == 0  # ingested after the crash, found again on resume

    with pytest.raises(UserInputError, match=f"run #{first.run_id} is done"):
        resume_training(ctx, first.run_id)


def test_resume_refuses_a_run_without_a_checkpoint(ctx):
    def crash(trainer):
        raise RuntimeError("boom")

    first = run_training(ctx, tiny_config(max_steps=2, kl_every=0), launcher=in_process(crash))
    assert first.status == "failed"
    with pytest.raises(UserInputError, match="has no checkpoint to resume from"):
        resume_training(ctx, first.run_id)
    with pytest.raises(UserInputError, match="no DPO run #99"):
        resume_training(ctx, 99)
