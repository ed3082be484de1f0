"""Mention strings → token-boundary character spans.

Each mention is matched to *all* its occurrences in the passage: exactly,
then case-insensitively, then by a near match (rapidfuzz) over token windows.
A match must start and end on token boundaries, so `art` never matches
inside `start`.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from rapidfuzz import fuzz


@dataclass(frozen=True)
class Match:
    start: int  # offsets in the passage text
    end: int
    kind: str  # exact | case | fuzzy


def _occurrences(haystack: str, needle: str) -> List[int]:
    out, i = [], haystack.find(needle)
    while i >= 0:
        out.append(i)
        i = haystack.find(needle, i + 1)
    return out


def align_mention(
    mention: str,
    text: str,
    token_bounds: Sequence[Tuple[int, int]],
    fuzzy_threshold: float = 90.0,
) -> List[Match]:
    """All token-boundary occurrences of `mention` in `text`.

    `token_bounds` are the (start, end) character offsets of the tokens of
    `text`, sorted. Returns [] when the mention cannot be aligned: the caller
    records it as unaligned.
    """
    mention = mention.strip()
    if not mention or not token_bounds:
        return []
    starts = {s for s, _ in token_bounds}
    ends = {e for _, e in token_bounds}

    def at_bounds(positions: List[int], length: int, kind: str) -> List[Match]:
        return [Match(p, p + length, kind) for p in positions if p in starts and p + length in ends]

    found = at_bounds(_occurrences(text, mention), len(mention), "exact")
    if found:
        return found
    lowered = text.lower()
    if len(lowered) == len(text):
        found = at_bounds(_occurrences(lowered, mention.lower()), len(mention), "case")
        if found:
            return found
    if fuzzy_threshold <= 0 or fuzzy_threshold > 100:
        return []
    return _fuzzy(mention, text, token_bounds, fuzzy_threshold)


def _fuzzy(
    mention: str, text: str, token_bounds: Sequence[Tuple[int, int]], threshold: float
) -> List[Match]:
    """Best token windows of similar length; ties keep every equal best window."""
    target = mention.lower()
    lo, hi = 0.7 * len(mention), 1.3 * len(mention) + 2
    best: List[Match] = []
    best_score = threshold
    for i, (start, _) in enumerate(token_bounds):
        # windows of tokens i..j whose character length is near the mention's
        for j in range(i, len(token_bounds)):
            end = token_bounds[j][1]
            length = end - start
            if length > hi:
                break
            if length < lo:
                continue
            score = fuzz.ratio(target, text[start:end].lower())
            if score > best_score:
                best_score, best = score, [Match(start, end, "fuzzy")]
            elif score == best_score and best:
                best.append(Match(start, end, "fuzzy"))
    return best


def token_bounds_in(doc_bounds: Sequence[Tuple[int, int]], start: int, end: int) -> List[Tuple[int, int]]:
    """Token offsets inside [start, end), shifted to be relative to `start`."""
    starts = [s for s, _ in doc_bounds]
    lo = bisect_left(starts, start)
    hi = bisect_right(starts, end)
    return [(s - start, e - start) for s, e in doc_bounds[lo:hi] if e <= end]
