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


def _output_head(model):
    """(decoder, output weights) when logits are a plain product with the output layer; else None."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    config = model.config
    plain = (getattr(config, "final_logit_softcapping", None) is None and getattr(config, "logit_scale", None) is None
             and out is not None and getattr(out, "bias", None) is None and hasattr(out, "weight"))
    return (decoder, out.weight) if decoder is not None and plain else None


def _restricted_logits(hidden, weight, allowed: Sequence[Sequence[int]]):
    """Logits over the union of the rows' allowed tokens, -inf where a row may not go; and that union."""
    import torch

    union = sorted({t for ids in allowed for t in ids})
    column = {t: j for j, t in enumerate(union)}
    vocab = torch.tensor(union, device=hidden.device)
    logits = (hidden @ weight[vocab].T).float()
    mask = torch.full_like(logits, float("-inf"))
    for k, ids in enumerate(allowed):
        mask[k, [column[t] for t in ids]] = 0.0
    return logits + mask, vocab


def compact(present: int, live: int) -> bool:
    """Drop finished rows once they are a quarter of the batch.

    Dropping copies the whole key/value cache, so doing it at every step that
    a row finishes cost more than decoding the finished rows a few steps
    longer (a step with few rows costs about the same as with one).
    """
    return live < present and (present - live) * 4 >= present


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
    forward_kwargs: Optional[dict] = None,
) -> List[List[Tuple[int, float]]]:
    """Greedy continuation of a left-padded batch: per row, (token, log-prob) pairs.

    `past_key_values` may already hold a prefix of `input_ids` (prefix
    sharing); only the rest is run. The end-of-sequence token is included
    when the row produced it. Before `min_new_tokens` no row may end (the
    GPU benchmark forces equal answer lengths on random weights this way).
    `forward_kwargs` go to every model call (the shared-prefix cache).
    """
    import torch

    from .cpu_speed import growing_cache

    cache = past_key_values if past_key_values is not None else growing_cache()
    done_len = cache.get_seq_length()
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    ids = input_ids[:, done_len:]
    pos = positions[:, done_len:]
    mask = attention_mask
    present = list(range(input_ids.shape[0]))  # batch rows still in the tensors, finished or not
    live = list(range(len(present)))  # their places in `present` that still decode
    tokens_of: List[List[int]] = [[] for _ in present]
    logprobs_of: List[List[float]] = [[] for _ in present]
    head = _output_head(model) if hasattr(processor, "allowed") else None
    forward_kwargs = forward_kwargs or {}
    with torch.inference_mode():
        for step in range(max_new_tokens):
            rows = [present[k] for k in live]
            index = torch.tensor(live, device=input_ids.device) if len(live) < len(present) else None
            if head is None:
                logits = model(
                    input_ids=ids, attention_mask=mask, position_ids=pos,
                    past_key_values=cache, use_cache=True, logits_to_keep=1, **forward_kwargs,
                ).logits[:, -1, :]
                logits = (logits if index is None else logits[index]).float()
                if processor is not None:
                    logits = processor([tokens_of[r] for r in rows], rows, logits)
                if step < min_new_tokens:
                    logits[:, eos_id] = float("-inf")
                vocab = None
            else:  # only the allowed tokens' logits: the output layer is a fifth of a step's work
                decoder, weight = head
                hidden = decoder(
                    input_ids=ids, attention_mask=mask, position_ids=pos,
                    past_key_values=cache, use_cache=True, **forward_kwargs,
                ).last_hidden_state[:, -1]
                hidden = hidden if index is None else hidden[index]
                allowed = processor.allowed([tokens_of[r] for r in rows], rows)
                if step < min_new_tokens:
                    allowed = [[t for t in ids_ if t != eos_id] or ids_ for ids_ in allowed]
                logits, vocab = _restricted_logits(hidden, weight, allowed)
            best, tokens = logits.max(-1)
            if vocab is not None:
                tokens = vocab[tokens]
            logprobs = (best - torch.logsumexp(logits, -1)).tolist()
            still: List[int] = []
            for k, r, t, lp in zip(live, rows, tokens.tolist(), logprobs):
                tokens_of[r].append(t)
                logprobs_of[r].append(lp)
                if step >= min_new_tokens and (t == eos_id or (stop is not None and stop(tokens_of[r]))):
                    continue
                still.append(k)
            if not still:
                break
            step_ids = torch.full((len(present),), eos_id, dtype=tokens.dtype, device=tokens.device)
            step_ids[torch.tensor(live, device=tokens.device)] = tokens
            live = still
            if compact(len(present), len(live)):
                index = torch.tensor(live, device=input_ids.device)
                cache.batch_select_indices(index)
                mask, pos, step_ids = mask[index], pos[index], step_ids[index]
                present = [present[k] for k in live]
                live = list(range(len(present)))
            ids = step_ids[:, None]
            pos = pos[:, -1:] + 1
            mask = torch.cat([mask, mask.new_ones((len(present), 1))], dim=1)
    return [list(zip(t, lp)) for t, lp in zip(tokens_of, logprobs_of)]
