"""Summed completion log-probs, tokenised and truncated exactly as TRL 1.16's DPOTrainer does."""

from __future__ import annotations

import logging

from common.errors import ModelError

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


def shared_prefix(rows: list[tuple[list[int], list[int]]]) -> int:
    """Leading positions that every row has in common and scores in none (the shared prompt tokens)."""
    first_ids, _ = rows[0]
    length = 0
    for t in range(min(len(ids) for ids, _ in rows)):
        if any(ids[t] != first_ids[t] or mask[t] for ids, mask in rows):
            break
        length += 1
    return length


def score_groups(
    model, pad_token_id: int, groups: list[list[tuple[list[int], list[int]]]], batch_size: int
) -> list[list[float]]:
    """`score_rows` for groups of rows that share a prompt: the shared prompt tokens run once per group.

    The prompt forward fills a KV cache that every response of the group continues from, with the positions each
    token has in the full sequence, so the numbers are those of `score_rows` (TRL's right-padded reference pass).
    Groups with one row, or nothing worth sharing, are scored plainly.
    """
    import torch

    results = [[0.0] * len(rows) for rows in groups]
    plain: list[tuple[int, int]] = []
    shared: list[tuple[int, int]] = []
    for g, rows in enumerate(groups):
        # The last shared token stays in each continuation: its logits predict the first response token.
        keep = shared_prefix(rows) - 1 if len(rows) > 1 else 0
        if keep >= 1:
            shared.append((g, keep))
        else:
            plain.extend((g, r) for r in range(len(rows)))
    if plain:
        values = score_rows(model, pad_token_id, [groups[g][r] for g, r in plain], batch_size)
        for (g, r), value in zip(plain, values, strict=True):
            results[g][r] = value
    # Similar lengths together; at least one group per batch even when it alone exceeds batch_size rows.
    shared.sort(key=lambda item: max(len(ids) for ids, _ in groups[item[0]]))
    batch: list[tuple[int, int]] = []
    for item in [*shared, None]:
        if batch and (
            item is None or sum(len(groups[g]) for g, _ in batch) + len(groups[item[0]]) > batch_size
        ):
            try:
                sums = _score_shared_batch(
                    model, pad_token_id, [(groups[g], keep) for g, keep in batch], torch
                )
            except (AttributeError, TypeError, NotImplementedError) as exc:
                # An architecture whose cache cannot be reindexed per row: score its rows one by one instead.
                log.warning("shared-prompt scoring unavailable (%s); scoring each response whole", exc)
                sums = [score_rows(model, pad_token_id, groups[g], batch_size) for g, _ in batch]
            for (g, _), values in zip(batch, sums, strict=True):
                results[g] = values
            batch = []
        if item is not None:
            batch.append(item)
    return results


def _score_shared_batch(model, pad_token_id: int, batch, torch) -> list[list[float]]:
    """One prompt forward for the batch's groups, then one forward over all their continuations."""
    device = model.device
    width = max(keep for _, keep in batch)
    prefix = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    prefix_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, (rows, keep) in enumerate(batch):
        prefix[b, :keep] = torch.tensor(rows[0][0][:keep], dtype=torch.long)
        prefix_mask[b, :keep] = 1
    owner = [b for b, (rows, _) in enumerate(batch) for _ in rows]
    tails = [(ids[keep:], mask[keep:], keep) for rows, keep in batch for ids, mask in rows]
    tail_width = max(len(ids) for ids, _, _ in tails)
    tail_ids = torch.full((len(tails), tail_width), pad_token_id, dtype=torch.long)
    tail_mask = torch.zeros((len(tails), tail_width), dtype=torch.long)
    positions = torch.zeros((len(tails), tail_width), dtype=torch.long)
    for r, (ids, _, keep) in enumerate(tails):
        tail_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        tail_mask[r, : len(ids)] = 1
        positions[r] = keep + torch.arange(tail_width)  # where each token sits in its full sequence
    with torch.inference_mode():
        # Right padding: a padded query still sees its real prompt tokens, so no row's attention is all masked.
        cache = model(
            input_ids=prefix.to(device),
            attention_mask=prefix_mask.to(device),
            position_ids=torch.arange(width)[None].expand(len(batch), -1).to(device),
            use_cache=True,
            **({"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}),
        ).past_key_values
        cache.batch_select_indices(torch.tensor(owner, device=device))
        logits = model(
            input_ids=tail_ids.to(device),
            attention_mask=torch.cat([prefix_mask[owner], tail_mask], dim=1).to(device),
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=True,
        ).logits
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    sums: list[list[float]] = [[] for _ in batch]
    for r, (ids, mask, _) in enumerate(tails):
        # Token t of the continuation is predicted at t-1; position 0 is a shared (unscored) prompt token.
        targets = [t for t in range(1, len(ids)) if mask[t]]
        if not targets:
            sums[owner[r]].append(0.0)
            continue
        index = torch.tensor(targets, device=logits.device)
        labels = tail_ids[r, targets].to(logits.device)
        logps = logits[r, index - 1].log_softmax(dim=-1).gather(-1, labels[:, None]).squeeze(-1)
        sums[owner[r]].append(float(logps.sum()))
    return sums
