"""Candidates → the non-overlapping set written to `doc.ents`."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Dict, Iterable, List, Tuple

from ..errors import ConfigError
from ..types import Candidate

_KEYS: Dict[str, Callable[[Candidate], Tuple]] = {
    "longest": lambda c: (-(c.end - c.start), -c.score, c.start),
    "score": lambda c: (-c.score, -(c.end - c.start), c.start),
    "first": lambda c: (c.start, -(c.end - c.start), -c.score),
}
POLICIES = tuple(_KEYS)


def consolidate(candidates: Iterable[Candidate], bonus: float = 0.0, sep: str = " | ") -> List[Candidate]:
    """One candidate per (start, end, label) from split questions (paraphrases, definitions).

    Keeps the best score, joins the distinct questions that found it into
    `source` (best first), and adds `bonus` per extra agreeing question
    (capped at 1.0). Overlapping passages and paraphrase questions repeat
    candidates; the provenance survives.
    """
    groups: Dict[Tuple[int, int, str], List[Candidate]] = {}
    for c in candidates:
        groups.setdefault((c.start, c.end, c.label), []).append(c)
    out = []
    for group in groups.values():
        group.sort(key=lambda c: -c.score)
        best = group[0]
        sources: List[str] = []
        for c in group:
            for s in c.source.split(sep) if c.source else []:
                if s not in sources:
                    sources.append(s)
        score = min(1.0, best.score + bonus * max(0, len(sources) - 1))
        out.append(replace(best, score=score, source=sep.join(sources)))
    return sorted(out, key=lambda c: (c.start, c.end, c.label))


def resolve(
    candidates: Iterable[Candidate],
    policy: str = "longest",
    taken: Iterable[Tuple[int, int]] = (),
) -> List[Candidate]:
    """Greedy non-overlapping selection in the policy's order.

    `taken` are character ranges already claimed (entities kept on the Doc).
    """
    if policy not in _KEYS:
        raise ConfigError(f"Unknown overlap policy {policy!r}; choose one of {POLICIES}")
    chosen: List[Candidate] = []
    claimed = list(taken)
    for c in sorted(candidates, key=_KEYS[policy]):
        if all(c.end <= s or c.start >= e for s, e in claimed):
            chosen.append(c)
            claimed.append((c.start, c.end))
    return sorted(chosen, key=lambda c: c.start)
