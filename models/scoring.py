"""Summed completion log-probs, tokenised and truncated exactly as TRL 1.16's DPOTrainer does."""

from __future__ import annotations

import logging

from errors import ModelError

log = logging.getLogger(__name__)

# TRL 1.16 DPOConfig defaults; the reference log-prob cache keys on both, so they travel with every score.
TRL_MAX_LENGTH = 1024
TRL_TRUNCATION_MODE = "keep_start"
TRUNCATION_MODES = ("keep_start", "keep_end")


def chat_ids(tokenizer, messages: list[dict], **kwargs) -> list[int]:
    """Token ids of a chat rendered by the tokenizer's template, as TRL's `_tokenize` gets them."""
    rendered = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
    return list(rendered["input_ids"])


def common_prefix_length(ids: list[int], other: list[int]) -> int:
    """Number of leading tokens the two sequences share."""
    length = 0
    for a, b in zip(ids, other, strict=False):
        if a != b:
            break
        length += 1
    return length


def split_prompt_completion(tokenizer, prompt: list[dict], response: str) -> tuple[list[int], list[int]]:
    """(prompt_ids, completion_ids) the way TRL's DPO `tokenize_fn` builds them for conversational data."""
    prompt_ids = chat_ids(tokenizer, prompt, add_generation_prompt=True)
    full_ids = chat_ids(tokenizer, [*prompt, {"role": "assistant", "content": response}])
    # TRL starts the completion where prompt and prompt+response diverge: templates may render the prompt alone
    # differently, or tokens may merge across the boundary. So end-of-turn tokens belong to the completion.
    cut = common_prefix_length(prompt_ids, full_ids)
    return prompt_ids[:cut], full_ids[cut:]


def truncate(
    prompt_ids: list[int], completion_ids: list[int], max_length: int | None, truncation_mode: str
) -> tuple[list[int], list[int]]:
    """(input_ids, completion_mask) of prompt+completion truncated like DataCollatorForPreference."""
    ids = prompt_ids + completion_ids
    mask = [0] * len(prompt_ids) + [1] * len(completion_ids)
    if max_length is not None:
        window = slice(None, max_length) if truncation_mode == "keep_start" else slice(-max_length, None)
        ids, mask = ids[window], mask[window]
    return ids, mask


def check_truncation(max_length: int | None, truncation_mode: str) -> None:
    """Reject truncation settings TRL would refuse."""
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2
    ):
        raise ModelError(f"max_length must be an integer >= 2 or None, got {max_length!r}")
    if truncation_mode not in TRUNCATION_MODES:
        raise ModelError(f"truncation_mode must be one of {TRUNCATION_MODES}, got {truncation_mode!r}")


def score_rows(
    model, pad_token_id: int, rows: list[tuple[list[int], list[int]]], batch_size: int
) -> list[float]:
    """Summed log-prob of the masked tokens of each (input_ids, completion_mask) row, in input order."""
    import torch

    results: list[float] = [0.0] * len(rows)
    # Length-sorted batches waste less compute on padding; right padding keeps each row's numbers unchanged.
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        sums = _score_batch(model, pad_token_id, [rows[i] for i in chunk], torch)
        for i, value in zip(chunk, sums, strict=True):
            results[i] = value
    return results


def _score_batch(model, pad_token_id: int, rows, torch) -> list[float]:
    """Right-pad one batch (as TRL's collator does), run the model once, and sum completion log-probs."""
    device = model.device
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    completion = torch.zeros((len(rows), width), dtype=torch.long)
    for b, (ids, mask) in enumerate(rows):
        input_ids[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[b, : len(ids)] = 1
        completion[b, : len(mask)] = torch.tensor(mask, dtype=torch.long)
    # Token t is predicted from position t-1; the first position has no prediction, as in TRL's shifted labels.
    targets = completion[:, 1:].bool()
    if not targets.any():
        return [0.0] * len(rows)
    first = int(targets.any(dim=0).nonzero()[0])
    keep = width - first  # logits for positions first..width-1 only: the vocab-wide tensor is the memory hog
    kwargs = {"input_ids": input_ids.to(device), "attention_mask": attention.to(device), "use_cache": False}
    if _accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = keep
    with torch.inference_mode():
        logits = model(**kwargs).logits
    logits = logits[:, -keep:]
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # half-precision log_softmax over a 50k vocab loses the digits we compare on
    sums = []
    for b in range(len(rows)):
        positions = targets[b].nonzero().flatten()
        if positions.numel() == 0:
            sums.append(0.0)
            continue
        row_logits = logits[b, (positions - first).to(logits.device)]
        labels = input_ids[b, positions + 1].to(logits.device)
        logps = row_logits.log_softmax(dim=-1).gather(-1, labels[:, None]).squeeze(-1)
        sums.append(float(logps.sum()))
    return sums


def _accepts(model, name: str) -> bool:
    """Whether the model's forward takes keyword `name`."""
    import inspect

    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
