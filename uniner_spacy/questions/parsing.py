"""Raw model answer → mention strings.

Small students and remote servers return leading prose, truncated lists,
single quotes and repeats; we recover what is recoverable and say so, so that
failures are counted rather than hidden: `ok` is False when there is no list of
strings to read, and `repaired` is True when the answer was cut off (the list or
a string never closed, or it ran past `MAX_MENTIONS`), so mentions after the cut
are lost. Leading prose, repeats and blank items lose nothing and are not repairs.
Only the list's own strings are mentions: an item that is an object, a list,
a number or null gives none (`[{"name": "X"}]` names neither `name` nor `X`).
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..types import ParsedAnswer

# Mentions kept per answer. A passage is at most a few hundred model tokens, so no real answer
# lists 100 distinct mentions of one type; a longer list is a model looping (`"1", "2", "3", ...`),
# and each mention costs an alignment over the passage. The rest is dropped and the answer counts
# as truncated.
MAX_MENTIONS = 100


@dataclass(frozen=True)
class Literal:
    value: str
    start: int  # character range of the literal's content in the raw answer
    end: int


@dataclass(frozen=True)
class ListScan:
    """What the first `[...]` of an answer holds."""

    literals: List[Literal]  # its string items, in order
    found: bool  # there is a `[`
    closed: bool  # its `]` came (not cut off)
    others: int  # items that are not strings: objects, lists, numbers, null, bare words


def scan_items(raw: str) -> ListScan:
    """The items of the first `[...]` in `raw`.

    A small state machine rather than a regex, so that brackets and quotes
    inside strings do not end the list, and strings nested in an item
    (`{"name": "X"}`, `["X"]`) are not taken for items.
    """
    open_at = raw.find("[")
    if open_at < 0:
        return ListScan([], False, False, 0)
    literals: List[Literal] = []
    others = 0
    depth = 0  # nesting inside the current item
    bare = False  # inside a bare item (number, null, word)
    i, n = open_at + 1, len(raw)
    while i < n:
        ch = raw[i]
        if ch in "\"'":
            lit, i = read_string(raw, i)
            if lit is None:  # unterminated string: the answer was cut off
                return ListScan(literals, True, False, others)
            if depth == 0 and not bare:
                literals.append(lit)
            continue
        if ch in "[{":
            if depth == 0 and not bare:
                others += 1
            depth += 1
        elif ch in "]}":
            if depth == 0:
                if ch == "]":
                    return ListScan(literals, True, True, others)
            else:
                depth -= 1
        elif depth == 0:
            if ch == ",":
                bare = False
            elif not ch.isspace() and not bare:
                bare = True
                others += 1
        i += 1
    return ListScan(literals, True, False, others)


def scan_list(raw: str) -> Tuple[List[Literal], bool, bool]:
    """String items of the first `[...]` in `raw`: (literals, found, closed); see `scan_items`."""
    scan = scan_items(raw)
    return scan.literals, scan.found, scan.closed


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
    """Mentions in answer order, de-duplicated, at most `MAX_MENTIONS`; empty strings dropped.

    Not `ok` without a list, or when its items are all non-strings (`[{"name": "X"}]`, `[1990]`,
    `[null]`): the answer is then unread, not "no mentions". `repaired`: cut off, see the module.
    """
    scan = scan_items(raw)
    if not scan.found or (scan.others and not scan.literals):
        return ParsedAnswer(mentions=[], ok=False)
    mentions: List[str] = []
    seen = set()
    for lit in scan.literals:
        text = lit.value.strip()
        if text and text not in seen:
            seen.add(text)
            mentions.append(text)
    over = len(mentions) > MAX_MENTIONS
    return ParsedAnswer(mentions=mentions[:MAX_MENTIONS], ok=True, repaired=not scan.closed or over)


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
