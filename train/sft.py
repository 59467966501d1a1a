"""Demo LoRA SFT on gold answers with TRL's SFTTrainer, saving only the adapter."""

from __future__ import annotations

import copy
import gc
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import UserInputError
from train.sft_config import DEFAULT_TARGET_MODULES, SFTRunConfig

if TYPE_CHECKING:
    from models.local import LocalModel

__all__ = [
    "ADAPTER_DIR",
    "DEFAULT_TARGET_MODULES",
    "SFTResult",
    "SFTRunConfig",
    "run_sft",
    "sft_examples_from_prompts",
    "sft_run_config",
]

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
TRAINER_DIR = "trainer"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")

Messages = list[dict[str, Any]]
Example = tuple[Messages, str]
SFTProgress = Callable[[int, int, dict], None]


@dataclass
class SFTResult:
    """What an SFT run produced: the adapter folder and its loss curve."""

    adapter_path: Path
    steps: int
    max_steps: int
    train_loss: float
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    n_examples: int = 0
    stopped: bool = False


def sft_run_config(**values: Any) -> SFTRunConfig:
    """A demo SFT's settings from plain values, None meaning "not given" (the default stays): the `sft` command's
    flags and the Train tab's form build theirs here."""
    return SFTRunConfig(**{k: v for k, v in values.items() if v is not None})


def sft_examples_from_prompts(rows: Iterable[Any]) -> list[Example]:
    """(messages, gold answer) for every row with a gold answer; `gold` is {"answer": ...} or a string."""
    examples = []
    for row in rows:
        gold = row.gold
        answer = gold.get("answer") if isinstance(gold, dict) else gold
        if isinstance(answer, str) and answer.strip():
            examples.append((list(row.messages), answer))
    return examples


def run_sft(
    model: LocalModel,
    examples: list[Example],
    output_dir: Path,
    cfg: SFTRunConfig,
    *,
    progress: SFTProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SFTResult:
    """Train a LoRA adapter on (prompt, answer) pairs, loss on the answer only; save it to output_dir/adapter."""
    started = time.perf_counter()
    examples = _check_examples(examples)
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    output_dir = Path(output_dir)
    adapter_path = output_dir / ADAPTER_DIR
    if adapter_path.exists():
        raise UserInputError(f"an adapter already exists at {adapter_path}; pick a new output folder")
    output_dir.mkdir(parents=True, exist_ok=True)

    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    # peft 0.21 reads the deprecated `is_gradient_checkpointing` on every wrap; the warning is theirs, not the user's.
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )

    # A private copy of the weights (one more model in memory: ~0.54 GB for SmolLM2-135M in float32, on top of the
    # activations, ~6 GB at batch 8 x 220 tokens): get_peft_model injects LoRA layers in place, TRL patches forward
    # and pad ids, and the caller's model keeps serving generation and scoring meanwhile, so it must never see that.
    # (plain_copy: a variant sharing its base with others gets its adapters merged into its own copy.)
    hf_model = model.plain_copy()
    on_cpu, dtype = str(hf_model.device) == "cpu", str(hf_model.dtype)
    # TRL's collator pads on the right itself; a copy keeps the caller's left padding and pad token untouched.
    tokenizer = copy.deepcopy(model.tokenizer)
    tokenizer.padding_side = "right"

    trainer_dir = output_dir / TRAINER_DIR
    args = SFTConfig(
        output_dir=str(trainer_dir),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length,
        seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        # Prompt/completion data: TRL masks the prompt, so only the answer (and its end-of-turn) is trained.
        completion_only_loss=True,
        report_to=[],
        # Train where the model runs (--device); mixed precision matching the weights on a GPU.
        use_cpu=on_cpu,
        bf16=not on_cpu and dtype == "torch.bfloat16",
        fp16=not on_cpu and dtype == "torch.float16",
        save_strategy="no",
        # transformers 5 renamed it; TRL's `gradient_checkpointing=True` default would still switch it on.
        activation_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
    )
    callback = _make_callback(progress, should_stop)
    trainer = tmp = None
    try:
        trainer = SFTTrainer(
            model=hf_model,
            args=args,
            train_dataset=_dataset(examples),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[callback],
        )
        _drop_printer(trainer)
        n_examples = len(trainer.train_dataset)
        if n_examples == 0:
            raise UserInputError(
                f"every prompt fills max_length={cfg.max_length}, so no answer token is left to train on"
            )
        if n_examples < len(examples):
            log.warning(
                "%d of %d examples dropped: prompt fills max_length",
                len(examples) - n_examples,
                len(examples),
            )
        log.info("SFT on %d examples, %d epochs, batch %d", n_examples, cfg.epochs, cfg.batch_size)
        output = trainer.train()
        tmp = Path(tempfile.mkdtemp(prefix=f".{ADAPTER_DIR}.partial-", dir=output_dir))
        trainer.model.save_pretrained(tmp)
        for extra in tmp.iterdir():
            if extra.name not in ADAPTER_FILES:  # PEFT's README model card: only the adapter itself is kept
                _remove(extra)
        tmp.chmod(0o755)  # mkdtemp makes it private; once renamed it is an ordinary folder
        # Renaming a finished folder is atomic: readers see no adapter or a whole one, never a half-written one.
        os.rename(tmp, adapter_path)
        tmp = None
        state = trainer.state
        result = SFTResult(
            adapter_path=adapter_path,
            steps=state.global_step,
            max_steps=state.max_steps,
            train_loss=float(output.training_loss),
            losses=list(callback.losses),
            seconds=time.perf_counter() - started,
            n_examples=n_examples,
            stopped=callback.stopped,
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(trainer_dir, ignore_errors=True)  # save_strategy="no": only scratch ever lands there
        # The trainer holds the model copy, its gradients and AdamW state in reference cycles: free them now.
        trainer = hf_model = None
        gc.collect()
    log.info(
        "SFT done: %d/%d steps, loss %.4f, %.1f s -> %s",
        result.steps,
        result.max_steps,
        result.train_loss,
        result.seconds,
        adapter_path,
    )
    return result


def _check_examples(examples) -> list[Example]:
    """Reject anything but a non-empty list of (chat messages, answer string) pairs."""
    if not isinstance(examples, (list, tuple)) or not examples:
        raise UserInputError("SFT needs at least one (prompt messages, answer) example")
    checked = []
    for i, example in enumerate(examples):
        try:
            messages, answer = example
        except (TypeError, ValueError):
            raise UserInputError(
                f"SFT example {i} must be a (messages, answer) pair, got {example!r}"[:200]
            ) from None
        if not isinstance(messages, list) or not messages:
            raise UserInputError(
                f"SFT example {i}: messages must be a non-empty list, got {messages!r}"[:200]
            )
        for message in messages:
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise UserInputError(
                    f"SFT example {i}: each message needs 'role' and 'content', got {message!r}"[:200]
                )
        if not isinstance(answer, str) or not answer.strip():
            raise UserInputError(
                f"SFT example {i}: the answer must be a non-empty string, got {answer!r}"[:200]
            )
        checked.append((messages, answer))
    return checked


def _dataset(examples: list[Example]):
    """Conversational prompt/completion rows, the format TRL trains on the completion only."""
    from datasets import Dataset

    # Only role and content: extra keys (names, ids) would become ragged Arrow struct columns.
    rows = [
        {
            "prompt": [{"role": m["role"], "content": m["content"]} for m in messages],
            "completion": [{"role": "assistant", "content": answer}],
        }
        for messages, answer in examples
    ]
    return Dataset.from_list(rows)


def _make_callback(progress: SFTProgress | None, should_stop: Callable[[], bool] | None):
    """A TrainerCallback reporting each optimizer step and stopping when `should_stop()` says so."""
    from transformers import TrainerCallback

    class _SFTCallback(TrainerCallback):
        def __init__(self):
            self.losses: list[float] = []
            self.stopped = False

        def on_step_end(self, args, state, control, **kwargs):
            if should_stop is not None and should_stop():
                control.should_training_stop = True
                self.stopped = True
                log.info("SFT stop requested at step %d of %d", state.global_step, state.max_steps)
            # A step that is about to be logged is reported from on_log, with its loss.
            if progress is not None and not control.should_log:
                progress(state.global_step, state.max_steps, {})

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if "loss" not in logs:  # the end-of-training summary: run_sft returns it
                return
            self.losses.append(float(logs["loss"]))
            if progress is not None:
                progress(state.global_step, state.max_steps, logs)

    return _SFTCallback()


def _drop_printer(trainer) -> None:
    """With tqdm disabled Trainer print()s every log line; progress goes through the callback instead."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
