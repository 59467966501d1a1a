"""Local Hugging Face models: load a variant (base + merged LoRA adapters), generate, score, fingerprint."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import ModelError, UserInputError
from common.text import one_line
from models.sampling import Generation, SamplingParams
from models.scoring import TRL_MAX_LENGTH, TRL_TRUNCATION_MODE
from models.variants import DEFAULT_BASE, Variant, check_variant_paths, looks_local

__all__ = [
    "DEFAULT_BASE",
    "Generation",
    "LocalModel",
    "SamplingParams",
    "Variant",
    "check_variant_paths",
    "load_variant",
]

log = logging.getLogger(__name__)

Messages = list[dict[str, Any]]
Progress = Callable[[int, int], None]


class LocalModel:
    """A loaded causal LM and its tokenizer, ready to generate and score chats."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        name: str = "model",
        variant: Variant | None = None,
        lock=None,
        fingerprinter: Callable[[], str] | None = None,
        copier: Callable[[], Any] | None = None,
    ):
        if tokenizer.chat_template is None:
            raise ModelError(
                f"model {name!r}: the tokenizer has no chat template, so chats cannot be rendered"
            )
        if tokenizer.pad_token is None:
            # Padding positions are masked out everywhere, so any real token works; EOS is the usual choice.
            tokenizer.pad_token = tokenizer.eos_token
        # Left padding puts every prompt's last token in the same column, where generation continues.
        tokenizer.padding_side = "left"
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.variant = variant
        self._fingerprint: str | None = None
        # One forward at a time: generation jobs run in threads, and two at once would only double peak memory.
        # A variant sharing its base with others gets the base's lock, which also switches its adapters on.
        self._lock = lock if lock is not None else threading.RLock()
        self._fingerprinter = fingerprinter
        self._copier = copier

    @classmethod
    def from_pretrained_objects(cls, model, tokenizer, *, name: str = "model") -> LocalModel:
        """Wrap an in-memory model and tokenizer (tests, freshly trained models)."""
        return cls(model, tokenizer, name=name)

    def __repr__(self) -> str:
        return f"LocalModel(name={self.name!r}, dtype={self.model.dtype}, device={self.model.device})"

    @property
    def device(self):
        """The device the weights live on."""
        return self.model.device

    @property
    def where(self) -> str:
        """Where it runs, for people: 'sft on cuda:0, bf16'."""
        from models.devices import describe

        return describe(self)

    def plain_copy(self):
        """A private copy of the variant as a plain transformers model (adapters merged), e.g. to train on."""
        import copy

        with self._lock:
            return self._copier() if self._copier is not None else copy.deepcopy(self.model)

    @property
    def eos_token_ids(self) -> list[int]:
        """Token ids that end a completion: the generation config's plus the tokenizer's EOS."""
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids = configured if isinstance(configured, list) else [configured]
        ids = [*ids, self.tokenizer.eos_token_id]
        return list(dict.fromkeys(int(i) for i in ids if i is not None))

    def generate(
        self,
        prompts: list[Messages],
        params: SamplingParams | list[SamplingParams],
        *,
        seeds: list[int],
        batch_size: int = 8,
        progress: Progress | None = None,
    ) -> list[Generation]:
        """One completion per chat prompt; a completion depends only on its own prompt, parameters and seed.

        `params` is one setting for every prompt or one per prompt: the K responses of a prompt (the same chat
        under K settings) passed in one call share a single prompt forward.
        """
        from models.fast_generate import generate_chats

        if len(seeds) != len(prompts):
            raise ModelError(f"need one seed per prompt, got {len(seeds)} seeds for {len(prompts)} prompts")
        per_prompt = list(params) if isinstance(params, list | tuple) else [params] * len(prompts)
        if len(per_prompt) != len(prompts):
            raise ModelError(f"need one SamplingParams per prompt, got {len(per_prompt)} for {len(prompts)}")
        _check_batch_size(batch_size)
        self.check_context(prompts, [p.max_new_tokens for p in per_prompt])
        # Length-sorted, finished rows dropped and free slots refilled, repeated prompts prefilled once; per-row
        # seeds make the grouping irrelevant to what is sampled (models/fast_generate.py).
        return generate_chats(self, prompts, per_prompt, seeds, batch_size=batch_size, progress=progress)

    @property
    def context_window(self) -> int | None:
        """Positions the model can attend over (prompt + response), from its config; None when it names none."""
        config = getattr(self.model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return None

    def check_context(self, prompts: list[Messages], max_new_tokens: int | list[int]) -> None:
        """Refuse, in one line, a prompt whose tokens plus its response budget exceed the context window."""
        window = self.context_window
        if window is None or not prompts:
            return
        budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
        worst = None
        for prompt, budget in zip(prompts, budgets, strict=True):
            length = len(self._prompt_ids(prompt))
            if length + budget > window and (worst is None or length + budget > sum(worst)):
                worst = (length, budget)
        if worst is None:
            return
        length, budget = worst
        room = window - length
        advice = f"lower max new tokens to at most {room}" if room > 0 else "shorten the prompt"
        raise UserInputError(
            f"a prompt of {length} tokens plus max new tokens {budget} exceeds the {window}-token context of "
            f"{self.name}: {advice}"
        )

    def score(
        self,
        prompts: list[Messages],
        responses: list[str],
        *,
        batch_size: int = 8,
        max_length: int | None = TRL_MAX_LENGTH,
        truncation_mode: str = TRL_TRUNCATION_MODE,
    ) -> list[float]:
        """Summed log-prob of each response after its prompt, exactly as TRL's DPOTrainer computes ref logps."""
        from models.scoring import check_truncation, score_rows, split_prompt_completion, truncate

        if len(prompts) != len(responses):
            raise ModelError(f"need one response per prompt, got {len(responses)} for {len(prompts)} prompts")
        _check_batch_size(batch_size)
        check_truncation(max_length, truncation_mode)
        rows = []
        for prompt, response in zip(prompts, responses, strict=True):
            _check_messages(prompt)
            if not isinstance(response, str):
                raise ModelError(f"responses must be strings, got {type(response).__name__}")
            prompt_ids, completion_ids = split_prompt_completion(self.tokenizer, prompt, response)
            ids, mask = truncate(prompt_ids, completion_ids, max_length, truncation_mode)
            if sum(mask[1:]) == 0:
                # TRL drops such examples before training; 0.0 is the sum over the (empty) surviving completion.
                log.warning("prompt fills max_length=%s: no response tokens left to score", max_length)
            rows.append((ids, mask))
        with self._lock:
            return score_rows(self.model, self.tokenizer.pad_token_id, rows, batch_size)

    @property
    def fingerprint(self) -> str:
        """Short sha256 over the weights, the tokenizer's vocabulary and special tokens, and the chat template."""
        # Computed once: a loaded variant's weights never change (training writes a new adapter, a new variant).
        if self._fingerprint is None:
            with self._lock:
                if self._fingerprinter is not None:
                    self._fingerprint = self._fingerprinter()
                else:
                    self._fingerprint = _fingerprint(self.model, self.tokenizer)
        return self._fingerprint

    def _prompt_ids(self, prompt: Messages) -> list[int]:
        """Token ids of the prompt with the assistant turn opened."""
        from models.scoring import chat_ids

        _check_messages(prompt)
        return chat_ids(self.tokenizer, prompt, add_generation_prompt=True)


def load_variant(
    variant: Variant,
    *,
    cache_dir: str | os.PathLike,
    dtype=None,
    device: str = "cpu",
    device_map: str | None = None,
) -> LocalModel:
    """Load the variant's base, merge its adapters in order, and return it in eval mode on `device`.

    `device` and `dtype` may be `auto` (models/devices.py). The adapters are merged on the CPU before the model
    moves, so a variant's fingerprint does not depend on where it runs; a device map (asked for, or chosen when
    the model does not fit one GPU) loads straight onto the devices instead.
    """
    from models.devices import device_map_for, resolve

    placement = resolve(device, dtype, device_map)
    source = base_source(variant, cache_dir)
    mapping = device_map_for(placement, source)
    model, tokenizer = load_base(variant, source, placement.dtype, device_map=mapping)
    model = merge_adapters(model, variant.adapters)
    if mapping is None and placement.device != "cpu":
        model.to(placement.device)
    return LocalModel(model, tokenizer, name=variant.name, variant=variant)


def base_source(variant: Variant, cache_dir: str | os.PathLike) -> str:
    """What `from_pretrained` reads for the variant's base: a Hub id, a folder, or the converted default model."""
    check_variant_paths(variant.base, variant.adapters)
    if variant.base == DEFAULT_BASE:
        from models.gguf_cache import ensure_default_cache

        return str(ensure_default_cache(cache_dir))
    return str(Path(variant.base).expanduser()) if looks_local(variant.base) else variant.base


def load_base(variant: Variant, source: str, dtype="auto", *, device_map=None):
    """(model, tokenizer) of the variant's base from `source`, in `dtype` (`auto`: the checkpoint's own)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.devices import torch_dtype

    log.info("loading %s from %s", variant.name, source)
    kwargs = {"dtype": torch_dtype(dtype)}
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (
        Exception
    ) as exc:  # OSError, ValueError, HF Hub errors...: the user needs the source and the reason
        raise ModelError(one_line(f"cannot load base {variant.base!r} of {variant.name!r}: {exc}")) from exc
    return model, tokenizer


def merge_adapters(model, adapters: tuple[str, ...] | list[str]):
    """Apply each LoRA adapter in order, merging it into the weights before loading the next."""
    # Each adapter was trained on top of the model the previous ones produced (an SFT LoRA on the base, a DPO
    # LoRA on base+SFT), so merging one at a time reproduces exactly what each was trained against. The result is
    # a plain model: generate, score, fingerprint and TRL (as a frozen reference) need no adapter bookkeeping.
    if not adapters:
        return model
    from peft import PeftModel

    for adapter in adapters:
        try:
            peft_model = PeftModel.from_pretrained(model, str(Path(adapter).expanduser()), is_trainable=False)
        except Exception as exc:  # shape or target-module mismatches surface as assorted errors
            raise ModelError(one_line(f"cannot apply adapter {adapter}: {exc}")) from exc
        model = peft_model.merge_and_unload()
        log.info("merged adapter %s", adapter)
    return model


def _fingerprint(model, tokenizer) -> str:
    """Hash of every state_dict tensor (sorted keys, dtype, shape, bytes) plus tokenizer and chat template."""
    state = model.state_dict()
    return fingerprint_tensors(((key, state[key]) for key in sorted(state)), tokenizer)


def fingerprint_tensors(items, tokenizer) -> str:
    """The fingerprint of (key, tensor) pairs given in sorted key order, plus the tokenizer and chat template."""
    import torch

    digest = hashlib.sha256()
    for key, value in items:
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        # Viewing as bytes works for every dtype, bfloat16 included, which numpy itself cannot represent.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    vocab = sorted(tokenizer.get_vocab().items())
    special = {
        "special_tokens": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
        "added": sorted(str(t) for t in tokenizer.all_special_tokens),
    }
    digest.update(json.dumps(vocab, ensure_ascii=False).encode())
    digest.update(json.dumps(special, sort_keys=True, ensure_ascii=False).encode())
    digest.update((tokenizer.chat_template or "").encode())
    return digest.hexdigest()[:16]


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ModelError(f"batch_size must be a positive integer, got {batch_size!r}")


def _check_messages(messages: Messages) -> None:
    """A chat prompt must be a non-empty list of {role, content} dicts."""
    if not isinstance(messages, list) or not messages:
        raise ModelError(f"a prompt must be a non-empty list of chat messages, got {type(messages).__name__}")
    for message in messages:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ModelError(f"each chat message needs 'role' and 'content', got {message!r}"[:200])
