"""Greedy decoding that drops finished rows from the batch.

`model.generate` keeps every row until the longest answer ends, so a batch of
64 questions where most answers are `[]` (3 tokens) pays for 64 rows over the
26 steps of the longest list. UniNER answers are short and very uneven, so
here finished rows leave the batch (and its key/value cache) once they are a
quarter of it (`compact`). The log-probability of each greedy token is
`max - logsumexp` of the step's (processed) logits, so no per-step score
tensors are kept; under a grammar only the allowed tokens' logits are
computed, and the log-probability is normalised over them, as before.
"""
from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable


@runtime_checkable
class Constraint(Protocol):
    """A grammar over the answers (JsonListConstraint): it gets the allowed-tokens-only output layer
    and the forced-mention marks."""

    def options(self, generated: Sequence[Sequence[int]], rows: Sequence[int]) -> List[Tuple[List[int], bool]]:
        """Per row: the token ids allowed next, and whether the row is inside a mention."""
        ...

    def overrules(self, row: int, free_token: int) -> bool:
        """Whether the model's own choice `free_token` would have left the passage (the grammar forced)."""
        ...


# (generated tokens of the active rows, their indices in the batch, logits) -> logits, or a Constraint
Processor = Union[Callable[[Sequence[Sequence[int]], Sequence[int], "object"], "object"], Constraint]
# (generated tokens of one row) -> finished?
Stop = Callable[[Sequence[int]], bool]


class Step(NamedTuple):
    """One generated token: its log-probability (over the allowed tokens, under a grammar), and
    whether the grammar overruled the model's own choice there (inside a mention)."""

    token: int
    logprob: float
    forced: bool = False


def _output_head(model):
    """(decoder, output weights) when logits are a plain product with the output layer; else None."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    config = model.config
    plain = (getattr(config, "final_logit_softcapping", None) is None and getattr(config, "logit_scale", None) is None
             and out is not None and getattr(out, "bias", None) is None and hasattr(out, "weight"))
    return (decoder, out.weight) if decoder is not None and plain else None


def _free_choices(hidden, weight, inside: Sequence[bool]) -> dict:
    """{row: the model's own choice over the whole vocabulary}, for rows inside a mention.

    Where the grammar overrules that choice and the processor agrees the model
    was heading for text that is not in the passage, the mention it is pushed
    into is one it did not pick (`Step.forced`).
    """
    import torch

    rows = [k for k, flag in enumerate(inside) if flag]
    if not rows:
        return {}
    index = torch.tensor(rows, device=hidden.device)
    return dict(zip(rows, (hidden[index] @ weight.T).argmax(-1).tolist()))


def _full_logits(model, inputs: dict, index, processor, generated, rows):
    logits = model(**inputs, logits_to_keep=1).logits[:, -1, :]
    logits = (logits if index is None else logits[index]).float()
    return logits if processor is None else processor(generated, rows, logits)


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
    mark_forced: bool = False,
) -> List[List[Step]]:
    """Greedy continuation of a left-padded batch: per row, its `Step`s.

    `past_key_values` may already hold a prefix of `input_ids` (prefix
    sharing); only the rest is run. The end-of-sequence token is included
    when the row produced it. Before `min_new_tokens` no row may end (the
    GPU benchmark forces equal answer lengths on random weights this way).
    `forward_kwargs` go to every model call (the shared-prefix cache).
    `mark_forced` also finds the model's own choice over the whole vocabulary
    for rows inside a mention, to mark where the grammar overrules it
    (`Step.forced`); that is one more output-layer product per such row.
    """
    import torch

    from .cpu_kernels import growing_cache

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
    forced_of: List[List[bool]] = [[] for _ in present]
    constraint = processor if isinstance(processor, Constraint) else None
    head = _output_head(model) if constraint is not None else None
    forward_kwargs = forward_kwargs or {}
    with torch.inference_mode():
        for step in range(max_new_tokens):
            rows = [present[k] for k in live]
            index = torch.tensor(live, device=input_ids.device) if len(live) < len(present) else None
            generated = [tokens_of[r] for r in rows]
            inputs = dict(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                          use_cache=True, **forward_kwargs)
            if head is None or constraint is None:
                logits, vocab = _full_logits(model, inputs, index, processor, generated, rows), None
                if step < min_new_tokens:
                    logits[:, eos_id] = float("-inf")
                free = None
            else:  # only the allowed tokens' logits: the output layer is a fifth of a step's work
                options = constraint.options(generated, rows)
                allowed = [ids for ids, _ in options]
                if step < min_new_tokens:
                    allowed = [[t for t in a if t != eos_id] or a for a in allowed]
                hidden = head[0](**inputs).last_hidden_state[:, -1]
                hidden = hidden if index is None else hidden[index]
                logits, vocab = _restricted_logits(hidden, head[1], allowed)
                free = _free_choices(hidden, head[1], [inside for _, inside in options]) if mark_forced else None
            best, tokens = logits.max(-1)
            if vocab is not None:
                tokens = vocab[tokens]
            logprobs = (best - torch.logsumexp(logits, -1)).tolist()
            still: List[int] = []
            for j, (k, r, t, lp) in enumerate(zip(live, rows, tokens.tolist(), logprobs)):
                tokens_of[r].append(t)
                logprobs_of[r].append(lp)
                forced_of[r].append(free is not None and j in free and free[j] != t
                                    and constraint is not None and constraint.overrules(r, free[j]))
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
    return [[Step(*x) for x in zip(t, lp, f)] for t, lp, f in zip(tokens_of, logprobs_of, forced_of)]
