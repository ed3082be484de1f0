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

from typing import Callable, Dict, List, NamedTuple, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable


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

    @property
    def mention(self) -> Dict[int, bytes]:
        """Per row: the open mention's text so far, as of the last `options` (drafts continue it)."""
        ...


# (generated tokens of the active rows, their indices in the batch, logits) -> logits, or a Constraint
Processor = Union[Callable[[Sequence[Sequence[int]], Sequence[int], "object"], "object"], Constraint]
# (generated tokens of one row) -> finished?
Stop = Callable[[Sequence[int]], bool]
# a step runs drafts only while rows × (1 + draft length) stays within this many tokens: a step that
# small is bound by reading the weights, so it costs little more than one token a row; wider steps
# pay for every drafted token. Chosen by a sweep of budgets with benchmarks/settings.py (docs/speed.md)
DRAFT_BUDGET = 128


@runtime_checkable
class Drafter(Protocol):
    """Draft tokens for one row (drafting.PassageDrafter)."""

    tokens: int  # the longest draft

    def __call__(self, row: int, mention: bytes, generated: Sequence[int]) -> List[int]:
        """`mention`: the open mention's text so far, as the grammar last saw it (empty outside one)."""
        ...


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
    drafter: Optional[Drafter] = None,
    draft_budget: int = DRAFT_BUDGET,
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

    With a `drafter` (and a grammar), a step whose rows times draft length
    fit in `draft_budget` tokens runs each row's draft too and keeps the
    longest prefix that greedy decoding would have produced, plus the token
    after it (speculative decoding, exact under greedy choice). Rejected
    draft tokens stay in the key/value cache, masked out like padding.
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
    grammar = constraint if head is not None else None  # allowed tokens only: the restricted output layer
    if head is None or mark_forced or min_new_tokens:
        drafter = None  # drafts are checked against the grammar's allowed tokens, one position at a time
    forward_kwargs = forward_kwargs or {}
    last = None  # per present row: the token to run next (the last one chosen)

    def finished(r: int, t: int) -> bool:
        return (len(tokens_of[r]) >= max_new_tokens or (len(tokens_of[r]) > min_new_tokens and (
            t == eos_id or (stop is not None and stop(tokens_of[r])))))

    with torch.inference_mode():
        while True:
            rows = [present[k] for k in live]
            generated = [tokens_of[r] for r in rows]
            drafts: List[List[int]] = [[] for _ in rows]
            # per live row: the grammar's (allowed tokens, inside a mention) at each position this step runs
            chains = [[opt] for opt in grammar.options(generated, rows)] if grammar is not None else None
            if last is not None and drafter is not None and grammar is not None and chains is not None and \
                    len(rows) * (1 + drafter.tokens) <= draft_budget:
                for j, r in enumerate(rows):
                    room = max_new_tokens - len(tokens_of[r]) - 1
                    for t in drafter(r, grammar.mention.get(r, b""), tokens_of[r])[:room]:
                        if t not in chains[j][-1][0] or t == eos_id:
                            break  # the grammar rules the draft out here: it cannot be accepted
                        drafts[j].append(t)
                        chains[j].append(grammar.options([tokens_of[r] + drafts[j]], [r])[0])
            if last is not None:  # this step's tokens: [pad…][last][draft], right-aligned
                width = 1 + max(len(d) for d in drafts)
                ids = torch.full((len(present), width), eos_id, dtype=last.dtype, device=last.device)
                new_mask = mask.new_zeros((len(present), width))
                ids[:, -1] = last
                new_mask[live, -1] = 1  # finished rows kept until compaction: masked, so the MLP skips them
                for k, d in zip(live, drafts):
                    if d:
                        ids[k, width - 1 - len(d) :] = torch.tensor([int(last[k])] + d, dtype=last.dtype)
                        new_mask[k, width - 1 - len(d) :] = 1
                mask = torch.cat([mask, new_mask], dim=1)
                pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -width:]
            index = torch.tensor(live, device=input_ids.device) if len(live) < len(present) else None
            inputs = dict(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                          use_cache=True, **forward_kwargs)
            # per live row, per position verified: (token, log-prob, forced)
            picks: List[List[Tuple[int, float, bool]]]
            if head is None or grammar is None or chains is None:
                logits = _full_logits(model, inputs, index, processor, generated, rows)
                for j, r in enumerate(rows):
                    if len(tokens_of[r]) < min_new_tokens:
                        logits[j, eos_id] = float("-inf")
                best, tokens = logits.max(-1)
                logprobs = (best - torch.logsumexp(logits, -1)).tolist()
                picks = [[(t, lp, False)] for t, lp in zip(tokens.tolist(), logprobs)]
            else:  # only the allowed tokens' logits: the output layer is a fifth of a step's work
                hidden = head[0](**inputs).last_hidden_state
                hidden = hidden if index is None else hidden[index]
                width = hidden.shape[1]
                # (live row, its c-th position this step): the row's last token and drafts end the step
                at = [(j, c) for j in range(len(rows)) for c in range(len(chains[j]))]
                allowed = [chains[j][c][0] for j, c in at]
                for n, (j, _) in enumerate(at):
                    if len(tokens_of[rows[j]]) < min_new_tokens:
                        allowed[n] = [t for t in allowed[n] if t != eos_id] or allowed[n]
                flat = hidden[[j for j, _ in at], [width - len(chains[j]) + c for j, c in at]]
                logits, vocab = _restricted_logits(flat, head[1], allowed)
                best, tokens = logits.max(-1)
                logprobs = (best - torch.logsumexp(logits, -1)).tolist()
                chosen = vocab[tokens].tolist()
                free = _free_choices(flat, head[1], [chains[j][c][1] for j, c in at]) if mark_forced else {}
                picks = [[] for _ in rows]
                for n, (j, _) in enumerate(at):
                    t = chosen[n]
                    forced = n in free and free[n] != t and grammar.overrules(rows[j], free[n])
                    picks[j].append((t, logprobs[n], forced))
            still: List[int] = []
            next_tokens = {}
            for j, (k, r) in enumerate(zip(live, rows)):
                accepted, done = 0, False  # draft tokens greedy decoding agrees with
                for p, (t, lp, forced) in enumerate(picks[j]):  # each pick is the token after the ones before
                    tokens_of[r].append(t)
                    logprobs_of[r].append(lp)
                    forced_of[r].append(forced)
                    done = finished(r, t)
                    if done or p == len(drafts[j]) or t != drafts[j][p]:
                        break
                    accepted += 1
                rejected = len(drafts[j]) - accepted
                if rejected:  # their keys and values stay in the cache, masked out
                    mask[k, mask.shape[1] - rejected :] = 0
                if not done:
                    still.append(k)
                    next_tokens[k] = tokens_of[r][-1]
            if not still:
                break
            last = torch.full((len(present),), eos_id, dtype=input_ids.dtype, device=input_ids.device)
            for k, t in next_tokens.items():
                last[k] = t
            live = still
            if compact(len(present), len(live)):
                index = torch.tensor(live, device=input_ids.device)
                cache.batch_select_indices(index)
                mask, last = mask[index], last[index]
                present = [present[k] for k in live]
                live = list(range(len(present)))
    return [[Step(*x) for x in zip(t, lp, f)] for t, lp, f in zip(tokens_of, logprobs_of, forced_of)]
