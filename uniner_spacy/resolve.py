"""Candidates → the non-overlapping set written to `doc.ents`."""
from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Tuple

from .ty import Candidate

_KEYS: Dict[str, Callable[[Candidate], Tuple]] = {
    "longest": lambda c: (-(c.end - c.start), -c.score, c.start),
    "score": lambda c: (-c.score, -(c.end - c.start), c.start),
    "first": lambda c: (c.start, -(c.end - c.start), -c.score),
}
POLICIES = tuple(_KEYS)


def dedupe(candidates: Iterable[Candidate]) -> List[Candidate]:
    """One candidate per (start, end, label), the best-scored; overlapping passages repeat them."""
    best: Dict[Tuple[int, int, str], Candidate] = {}
    for c in candidates:
        key = (c.start, c.end, c.label)
        if key not in best or c.score > best[key].score:
            best[key] = c
    return sorted(best.values(), key=lambda c: (c.start, c.end, c.label))


def resolve(
    candidates: Iterable[Candidate],
    policy: str = "longest",
    taken: Iterable[Tuple[int, int]] = (),
) -> List[Candidate]:
    """Greedy non-overlapping selection in the policy's order.

    `taken` are character ranges already claimed (entities kept on the Doc).
    """
    if policy not in _KEYS:
        raise ValueError(f"Unknown overlap policy {policy!r}; choose one of {POLICIES}")
    chosen: List[Candidate] = []
    claimed = list(taken)
    for c in sorted(candidates, key=_KEYS[policy]):
        if all(c.end <= s or c.start >= e for s, e in claimed):
            chosen.append(c)
            claimed.append((c.start, c.end))
    return sorted(chosen, key=lambda c: c.start)
