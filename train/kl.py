"""KL estimate of the policy to its reference: sample from the policy, compare per-token log-probs.

KL(pi_theta || pi_ref) = E_{y ~ pi_theta}[log pi_theta(y) - log pi_ref(y)], estimated on a few held-out prompts.
The reference is the adapter-disabled policy (base + merged SFT = the SFT variant). These are the only reference
forwards a PrefLab DPO run makes; `probing()` tells instrumentation (tests, benchmarks) that one is in progress.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

_STATE = threading.local()


def probing() -> bool:
    """Whether the current thread is inside a KL estimate's reference forward."""
    return getattr(_STATE, "depth", 0) > 0


@contextlib.contextmanager
def _reference_probe():
    _STATE.depth = getattr(_STATE, "depth", 0) + 1
    try:
        yield
    finally:
        _STATE.depth -= 1


@dataclass(frozen=True)
class KLEstimate:
    """Mean per-token and per-sequence KL over the sampled completions, and what it took."""

    per_token: float
    per_sequence: float
    tokens: int
    sequences: int
    ref_forwards: int


def estimate_kl(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, seed: int) -> KLEstimate:
    """Sample one completion per prompt from `model` (a PeftModel) at temperature 1 and average the log-ratio."""
    import torch

    from models.generation import argmax_generation_config, left_pad
    from models.sampling import GumbelSampler
    from models.scoring import chat_ids

    eos = _eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    rows = [chat_ids(tokenizer, p, add_generation_prompt=True) for p in prompts]
    device = next(model.parameters()).device
    input_ids, attention = left_pad(rows, pad)
    width = input_ids.shape[1]
    from transformers import LogitsProcessorList

    # GumbelSampler turns the argmax into a seeded sample from the full softmax.
    config = argmax_generation_config(max_new_tokens, eos, pad)
    # Temperature 1, no top-p: the estimator needs samples from the policy itself. Per-row CPU generators keep the
    # training RNG untouched, so a run with KL estimates trains exactly like one without.
    sampler = GumbelSampler([seed + i for i in range(len(rows))], 1.0, 1.0)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
            )
            completion = out[:, width:]
            mask = _completion_mask(completion, eos)
            full_attention = torch.cat([attention.to(device), mask], dim=1)
            policy = _token_logps(model, out, full_attention, width)
            with _reference_probe(), model.disable_adapter():
                reference = _token_logps(model, out, full_attention, width)
    finally:
        model.train(was_training)
    diff = (policy - reference) * mask
    tokens = int(mask.sum())
    per_sequence = float(diff.sum(dim=1).mean()) if len(rows) else 0.0
    per_token = float(diff.sum() / tokens) if tokens else 0.0
    return KLEstimate(per_token, per_sequence, tokens, len(rows), ref_forwards=1)


def _eos_ids(model, tokenizer) -> list[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    return list(dict.fromkeys(int(i) for i in [*ids, tokenizer.eos_token_id] if i is not None))


def _completion_mask(completion, eos: list[int]):
    """1 for generated tokens up to and including the first EOS, 0 for the padding after it."""
    import torch

    is_eos = torch.zeros_like(completion, dtype=torch.bool)
    for token in eos:
        is_eos |= completion == token
    # Tokens after the first EOS have a positive count of EOS strictly before them.
    before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return (before == 0).long()


def _token_logps(model, ids, attention, width: int):
    """Log-prob of each generated token (positions width..end) given everything before it."""
    import torch

    # Positions follow the attention mask, as during generation with left padding.
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    keep = ids.shape[1] - width + 1  # logits of positions width-1 .. end-1 predict the generated tokens
    logits = model(
        input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=False, logits_to_keep=keep
    ).logits[:, :-1]
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = (
            logits.float()
        )  # half-precision log_softmax over a large vocabulary loses the digits we compare
    return logits.log_softmax(dim=-1).gather(-1, ids[:, width:, None]).squeeze(-1)
