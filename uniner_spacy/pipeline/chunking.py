"""Document → passages within the model's token budget, offsets kept.

UniNER was trained on passages of at most 256 tokens and the official code
refuses longer prompts, so long documents are cut here, on sentence
boundaries where the Doc has them, with overlap so that an entity on a cut
is seen whole in at least one passage. Nothing is truncated.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import List, Sequence, Tuple

from ..errors import ConfigError
from ..types import Passage

Offsets = Sequence[Tuple[int, int]]


def chunk_text(
    text: str,
    model_tokens: Offsets,
    units: Offsets,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
) -> List[Passage]:
    """Pack `units` (sentences, else words) into passages of ≤ `max_tokens`.

    `model_tokens` are the character offsets of the model tokenizer's tokens
    over `text`; units larger than the budget are split by model tokens.
    Consecutive passages share trailing units worth ≤ `overlap_tokens`.
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be positive, got {max_tokens}")
    tok_starts = [s for s, _ in model_tokens]
    tok_ends = [e for _, e in model_tokens]

    def count(start: int, end: int) -> int:
        """Tokens overlapping [start, end); byte-level BPE tokens carry the space before a word."""
        return max(0, bisect_left(tok_starts, end) - bisect_right(tok_ends, start))

    pieces: List[Tuple[int, int, int]] = []  # (start, end, n_tokens)
    for start, end in units:
        n = count(start, end)
        if n <= max_tokens:
            pieces.append((start, end, n))
        else:  # an over-long unit: cut by model tokens, still with overlap
            first = bisect_right(tok_ends, start)
            last = bisect_left(tok_starts, end)
            step = max(1, max_tokens - overlap_tokens)
            for i in range(first, last, step):
                j = min(i + max_tokens, last)
                pieces.append((model_tokens[i][0], model_tokens[j - 1][1], j - i))
                if j == last:
                    break
    passages: List[Passage] = []
    i = 0
    while i < len(pieces):
        j, total = i, 0
        while j < len(pieces) and total + pieces[j][2] <= max_tokens:
            total += pieces[j][2]
            j += 1
        j = max(j, i + 1)
        start, end = pieces[i][0], pieces[j - 1][1]
        if text[start:end].strip():
            passages.append(Passage(text=text[start:end], start=start, n_tokens=count(start, end)))
        if j >= len(pieces):
            break
        # step back over trailing units that fit in the overlap budget
        k, back = j, 0
        while k - 1 > i and back + pieces[k - 1][2] <= overlap_tokens:
            back += pieces[k - 1][2]
            k -= 1
        i = k
    return passages


def doc_units(doc) -> List[Tuple[int, int]]:
    """Sentence offsets when the Doc has sentence boundaries, else token offsets.

    A Doc without boundaries gets them from a rule-based sentencizer on a
    copy, so the user's Doc is never changed.
    """
    if not doc.has_annotation("SENT_START"):
        from spacy.pipeline import Sentencizer

        doc = Sentencizer()(doc.copy())
    return [(s.start_char, s.end_char) for s in doc.sents if s.text.strip()]
