"""Conversations → token ids with loss masks.

Labels are -100 everywhere except on the tokens of each assistant answer and the
end-of-sequence token that closes it (UNINER.md: loss on assistant turns only).
The answer spans come from `Template.render_conversation` as character ranges
and are mapped to tokens through the fast tokenizer's offset mapping, so the
template is never re-typed here.

Nothing is truncated silently: a conversation longer than `max_length` is split
into several conversations over the same passage (each with a subset of the
turns); one that cannot fit even with a single turn is dropped. Both are counted.

Run `python -m training.features`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from training.conversations import Conversation

IGNORE = -100
DEFAULT_MAX_LENGTH = 1024


@dataclass
class TokenizeStats:
    conversations: int = 0
    features: int = 0
    split: int = 0  # conversations split over several features
    dropped: int = 0  # conversations that did not fit with a single turn
    dropped_turns: int = 0
    straddling: int = 0  # tokens crossing a loss-range edge (should stay 0)
    tokens: int = 0
    loss_tokens: int = 0

    def to_dict(self) -> Dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Feature:
    input_ids: List[int]
    labels: List[int]
    source: str = ""
    n_turns: int = 0
    extra: Dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(conv: Conversation, tokenizer, eos: str, stats: TokenizeStats | None = None,
           layout: str = "uniner", bos: bool = False) -> Feature:
    """One conversation → ids and labels (no length check); `layout`: the template's (prompts.LAYOUTS);
    `bos`: the tokenizer's BOS opens the sequence, as at inference (Gemma is trained with one)."""
    text, targets = conv.render(eos, layout)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: List[int] = enc["input_ids"]
    offsets: List[Tuple[int, int]] = enc["offset_mapping"]
    if bos:  # no text: its (0, 0) offsets carry no loss below
        ids, offsets = [tokenizer.bos_token_id] + ids, [(0, 0)] + offsets
    labels = [IGNORE] * len(ids)
    t = 0
    for i, (start, end) in enumerate(offsets):
        while t < len(targets) and targets[t][1] <= start:
            t += 1
        if t == len(targets):
            break
        lo, hi = targets[t]
        if start >= lo and end <= hi and end > start:
            labels[i] = ids[i]
        elif start < lo < end or start < hi < end:
            if stats is not None:
                stats.straddling += 1
            if start >= lo:  # starts inside the answer: it is generated, keep its loss
                labels[i] = ids[i]
    return Feature(input_ids=ids, labels=labels, source=conv.source, n_turns=len(conv.turns))


def tokenize_conversations(
    conversations: Sequence[Conversation],
    tokenizer,
    eos: str,
    max_length: int = DEFAULT_MAX_LENGTH,
    layout: str = "uniner",
    bos: bool = False,
) -> Tuple[List[Feature], TokenizeStats]:
    """Encode all conversations, splitting or dropping those over `max_length`."""
    stats = TokenizeStats()
    features: List[Feature] = []
    for conv in conversations:
        stats.conversations += 1
        feat = encode(conv, tokenizer, eos, stats, layout, bos)
        if len(feat) <= max_length:
            parts = [feat]
        else:
            parts = _split(conv, tokenizer, eos, max_length, stats, layout, bos)
            if parts:
                stats.split += 1
            else:
                stats.dropped += 1
                stats.dropped_turns += len(conv.turns)
        for part in parts:
            features.append(part)
            stats.features += 1
            stats.tokens += len(part)
            stats.loss_tokens += sum(1 for x in part.labels if x != IGNORE)
    return features, stats


def _split(conv: Conversation, tokenizer, eos: str, max_length: int, stats: TokenizeStats,
           layout: str = "uniner", bos: bool = False) -> List[Feature]:
    """Greedily pack the turns into conversations that each fit."""
    parts: List[Feature] = []
    current: List[int] = []
    for i in range(len(conv.turns)):
        trial = _subset(conv, current + [i])
        feat = encode(trial, tokenizer, eos, layout=layout, bos=bos)
        if len(feat) <= max_length:
            current.append(i)
            continue
        if current:
            parts.append(encode(_subset(conv, current), tokenizer, eos, stats, layout, bos))
        alone = encode(_subset(conv, [i]), tokenizer, eos, layout=layout, bos=bos)
        if len(alone) <= max_length:
            current = [i]
        else:
            current = []
            stats.dropped_turns += 1
    if current:
        parts.append(encode(_subset(conv, current), tokenizer, eos, stats, layout, bos))
    return parts


def _subset(conv: Conversation, idx: Sequence[int]) -> Conversation:
    return Conversation(
        passage=conv.passage,
        turns=[conv.turns[i] for i in idx],
        source=conv.source,
        dataset=conv.dataset,
        dataset_prompt=conv.dataset_prompt,
        types=[conv.types[i] for i in idx] if conv.types else [],
    )


def main() -> None:  # pragma: no cover - a quick look from the command line
    import argparse
    from collections import Counter

    from transformers import AutoTokenizer

    from training.conversations import read_jsonl
    from uniner_spacy.weights import EMBEDDED_EOS, convert_gguf, embedded_gguf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("conversations", help="JSONL written by training.mixture")
    parser.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(str(convert_gguf(embedded_gguf())))
    feats, stats = tokenize_conversations(read_jsonl(args.conversations), tokenizer, EMBEDDED_EOS, args.max_length)
    print(stats.to_dict())
    per_source = Counter()
    for f in feats:
        per_source[f.source] += len(f)
    for source, n in per_source.most_common():
        print(f"{source}\t{n}")


if __name__ == "__main__":  # pragma: no cover
    main()
