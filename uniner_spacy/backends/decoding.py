"""Greedy decoding that drops finished rows from the batch.

`model.generate` keeps every row until the longest answer ends, so a batch of
64 questions where most answers are `[]` (3 tokens) pays for 64 rows over the
26 steps of the longest list. UniNER answers are short and very uneven, so
here a row leaves the batch (and its key/value cache) the step it finishes.
The log-probability of each greedy token is `max - logsumexp` of the step's
(processed) logits, so no per-step score tensors are kept.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

# (generated tokens of the active rows, their indices in the batch, logits) -> logits
Processor = Callable[[Sequence[Sequence[int]], Sequence[int], "object"], "object"]
# (generated tokens of one row) -> finished?
Stop = Callable[[Sequence[int]], bool]


def greedy_decode(
    model,
    input_ids,
    attention_mask,
    *,
    eos_id: int,
    max_new_tokens: int,
    min_new_tokens: int = 0,
    past_key_values=None,
    processor: Optional[Processor] = None,
    stop: Optional[Stop] = None,
) -> List[List[Tuple[int, float]]]:
    """Greedy continuation of a left-padded batch: per row, (token, log-prob) pairs.

    `past_key_values` may already hold a prefix of `input_ids` (prefix
    sharing); only the rest is run. The end-of-sequence token is included
    when the row produced it. Before `min_new_tokens` no row may end (the
    GPU benchmark forces equal answer lengths on random weights this way).
    """
    import torch
    from transformers import DynamicCache

    cache = past_key_values if past_key_values is not None else DynamicCache()
    done_len = cache.get_seq_length()
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    ids = input_ids[:, done_len:]
    pos = positions[:, done_len:]
    mask = attention_mask
    rows = list(range(input_ids.shape[0]))
    tokens_of: List[List[int]] = [[] for _ in rows]
    logprobs_of: List[List[float]] = [[] for _ in rows]
    with torch.inference_mode():
        for step in range(max_new_tokens):
            logits = model(
                input_ids=ids, attention_mask=mask, position_ids=pos,
                past_key_values=cache, use_cache=True, logits_to_keep=1,
            ).logits[:, -1, :].float()
            if processor is not None:
                logits = processor([tokens_of[r] for r in rows], rows, logits)
            if step < min_new_tokens:
                logits[:, eos_id] = float("-inf")
            best, tokens = logits.max(-1)
            logprobs = (best - torch.logsumexp(logits, -1)).tolist()
            keep: List[int] = []
            for k, (r, t, lp) in enumerate(zip(rows, tokens.tolist(), logprobs)):
                tokens_of[r].append(t)
                logprobs_of[r].append(lp)
                if step >= min_new_tokens and (t == eos_id or (stop is not None and stop(tokens_of[r]))):
                    continue
                keep.append(k)
            if not keep:
                break
            if len(keep) < len(rows):
                index = torch.tensor(keep, device=input_ids.device)
                cache.batch_select_indices(index)
                mask, pos, tokens = mask[index], pos[index], tokens[index]
                rows = [rows[k] for k in keep]
            ids = tokens[:, None]
            pos = pos[:, -1:] + 1
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
    return [list(zip(t, lp)) for t, lp in zip(tokens_of, logprobs_of)]
