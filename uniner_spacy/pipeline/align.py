"""Mention strings → character spans: token-boundary spans for the pipe, word-bounded ones for gold data.

Each mention is matched to *all* its occurrences in the passage: exactly,
then case-insensitively, then (the pipe only) by a near match (rapidfuzz)
over token windows. A pipe match must start and end on token boundaries, so
`art` never matches inside `start`; `find_mentions` (gold strings, teacher
answers) prefers matches that do not cut a word.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

from rapidfuzz import fuzz


@dataclass(frozen=True)
class Match:
    start: int  # offsets in the passage text
    end: int
    kind: str  # exact | case | fuzzy


def _occurrences(haystack: str, needle: str, overlapping: bool = True) -> List[int]:
    out, i = [], haystack.find(needle)
    step = 1 if overlapping else len(needle)
    while i >= 0:
        out.append(i)
        i = haystack.find(needle, i + step)
    return out


def _passes(text: str, mention: str) -> Iterator[Tuple[str, str, str]]:
    """(kind, haystack, needle): exact, then lower-cased where that keeps every offset."""
    yield "exact", text, mention
    lowered, needle = text.lower(), mention.lower()
    if len(lowered) == len(text) and len(needle) == len(mention):
        yield "case", lowered, needle


def _whole_words(text: str, start: int, end: int) -> bool:
    left = start == 0 or not (text[start - 1].isalnum() and text[start].isalnum())
    right = end == len(text) or not (text[end - 1].isalnum() and text[end].isalnum())
    return left and right


def find_mentions(text: str, mention: str) -> List[Tuple[int, int]]:
    """All non-overlapping occurrences of `mention`, preferring word boundaries.

    Tries exact matches that do not cut a word (`art` not inside `start`), then
    any exact match, then the same two case-insensitively. Empty list: not found.
    """
    mention = mention.strip()
    if not mention:
        return []
    for _, hay, needle in _passes(text, mention):
        found = [(p, p + len(needle)) for p in _occurrences(hay, needle, overlapping=False)]
        bounded = [o for o in found if _whole_words(text, *o)]
        if found:
            return bounded or found
    return []


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
    for kind, hay, needle in _passes(text, mention):
        found = [Match(p, p + len(needle), kind) for p in _occurrences(hay, needle)
                 if p in starts and p + len(needle) in ends]
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
