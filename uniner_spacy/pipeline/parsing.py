"""Raw model answer → mention strings.

Small students and remote servers return leading prose, truncated lists,
single quotes and repeats; we recover what is recoverable and say so
(`ok`, `repaired`) so failures are counted rather than hidden.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..types import ParsedAnswer


@dataclass(frozen=True)
class Literal:
    value: str
    start: int  # character range of the literal's content in the raw answer
    end: int


def scan_list(raw: str) -> Tuple[List[Literal], bool, bool]:
    """String literals of the first `[...]` in `raw`: (literals, found, closed).

    A small state machine rather than a regex, so that brackets and quotes
    inside strings do not end the list.
    """
    open_at = raw.find("[")
    if open_at < 0:
        return [], False, False
    literals: List[Literal] = []
    i, n = open_at + 1, len(raw)
    while i < n:
        ch = raw[i]
        if ch == "]":
            return literals, True, True
        if ch in "\"'":
            lit, i = read_string(raw, i)
            if lit is None:  # unterminated string: the answer was cut off
                return literals, True, False
            literals.append(lit)
            continue
        i += 1
    return literals, True, False


def closes_outside_words(raw: str, j: int) -> bool:
    """The quote at `raw[j]` ends its string, unless it is a single quote inside a word (O'Brien)."""
    return not (raw[j] == "'" and j + 1 < len(raw) and raw[j + 1].isalnum())


def _decode(body: str, quote: str) -> str:
    if "\\" not in body:
        return body
    try:
        if quote == '"':
            return json.loads(f'"{body}"')
        return ast.literal_eval(f"'{body}'")
    except (ValueError, SyntaxError):
        return body


def read_string(
    raw: str,
    i: int,
    closes: Callable[[str, int], bool] = closes_outside_words,
    decode: Callable[[str, str], str] = _decode,
) -> Tuple[Optional[Literal], int]:
    """The quoted string starting at `raw[i]` (the quote): (literal, index after it).

    A backslash escapes the next character; a quote of the same kind ends the
    string where `closes(raw, j)` says so. `decode(body, quote)` turns the
    body into the value (JSON / Python escapes by default). An unterminated
    string (a cut-off answer) gives (None, len(raw)).
    """
    quote, j, n = raw[i], i + 1, len(raw)
    while j < n:
        ch = raw[j]
        if ch == "\\":
            j += 2
            continue
        if ch == quote and closes(raw, j):
            body = raw[i + 1 : j]
            return Literal(decode(body, quote), i + 1, j), j + 1
        j += 1
    return None, n


def parse_answer(raw: str) -> ParsedAnswer:
    """Mentions in answer order, de-duplicated; empty strings dropped."""
    literals, found, closed = scan_list(raw)
    if not found:
        return ParsedAnswer(mentions=[], ok=False)
    prefix_is_clean = raw[: raw.find("[")].strip() == ""
    mentions: List[str] = []
    seen = set()
    for lit in literals:
        text = lit.value.strip()
        if text and text not in seen:
            seen.add(text)
            mentions.append(text)
    repaired = not closed or not prefix_is_clean or len(mentions) < len(literals)
    return ParsedAnswer(mentions=mentions, ok=True, repaired=repaired)


def _token_bounds(pieces: List[Tuple[str, float]]) -> List[Tuple[int, int]]:
    """Character range of each token in the raw answer (token texts laid end to end)."""
    bounds, pos = [], 0
    for piece, _ in pieces:
        bounds.append((pos, pos + len(piece)))
        pos += len(piece)
    return bounds


def forced_mentions(raw: str, pieces: List[Tuple[str, float]], forced: Sequence[bool]) -> Tuple[str, ...]:
    """The list items of `raw` that contain a token marked forced."""
    spans = [b for b, flag in zip(_token_bounds(pieces), forced) if flag]
    if not spans:
        return ()
    literals, _, _ = scan_list(raw)
    return tuple(lit.value.strip() for lit in literals if any(s < lit.end and e > lit.start for s, e in spans))


def mention_scores(
    raw: str, token_logprobs: Optional[List[Tuple[str, float]]], mentions: List[str]
) -> Optional[List[float]]:
    """Probability of each mention: exp of the mean log-probability of its tokens.

    Token texts are laid end to end to recover their character ranges in the
    raw answer; a mention's tokens are those overlapping its first literal.
    """
    if not token_logprobs:
        return None
    import math

    bounds = [(s, e, lp) for (s, e), (_, lp) in zip(_token_bounds(token_logprobs), token_logprobs)]
    literals, _, _ = scan_list(raw)
    first: Dict[str, Literal] = {}
    for lit in literals:
        first.setdefault(lit.value.strip(), lit)
    scores = []
    for m in mentions:
        found = first.get(m)
        if found is None:
            scores.append(0.0)
            continue
        lps = [lp for s, e, lp in bounds if s < found.end and e > found.start]
        scores.append(math.exp(sum(lps) / len(lps)) if lps else 0.0)
    return scores
