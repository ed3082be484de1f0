"""Conflict resolution with context embeddings, and provenance consolidation.

When one span, or overlapping spans, are claimed by several labels (`Paris`
as location, `Paris Hilton` as person), each claim is re-scored by mixing its
candidate score with how well the mention in its sentence fits the label's
description (or name). Every candidate is kept: the component writes all of
them to `doc.spans`, and its overlap policy then picks `doc.ents` with the
updated scores, so runners-up stay visible.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from spacy.tokens import Doc

from ..errors import ConfigError
from ..pipeline.resolve import consolidate
from ..registry import registry
from ..types import Candidate
from .embeddings import Embedder, label_text, shared_embedder


def conflict_groups(candidates: List[Candidate]) -> List[List[int]]:
    """Indices of candidates chained by overlap, where the chain holds more than one label."""
    order = sorted(range(len(candidates)), key=lambda i: (candidates[i].start, candidates[i].end))
    groups: List[List[int]] = []
    current: List[int] = []
    reach = -1
    for i in order:
        c = candidates[i]
        if current and c.start >= reach:
            groups.append(current)
            current = []
        reach = max(reach, c.end) if current else c.end
        current.append(i)
    if current:
        groups.append(current)
    return [g for g in groups if len({candidates[i].label for i in g}) > 1]


def _context(doc: Doc, start: int, end: int, window: int) -> str:
    """The mention with up to `window` tokens each side, inside its sentence when sentences are set.

    A short window localises: for `Paris` inside `Paris Hilton flew to Paris`, the
    first reads `Paris Hilton flew…` (a person), the second `…flew to Paris on…` (a place).
    """
    span = doc.char_span(start, end, alignment_mode="expand")
    if span is None:
        return doc.text[start:end]
    lo_limit, hi_limit = 0, len(doc)
    if doc.has_annotation("SENT_START"):
        lo_limit, hi_limit = span.sent.start, span.sent.end
    lo, hi = max(lo_limit, span.start - window), min(hi_limit, span.end + window)
    return doc[lo:hi].text


class ConflictResolver:
    """A Stage: re-score candidates that compete for the same text.

    new score = (1 - weight) * score + weight * p(label | mention in context),
    where p is a softmax (temperature `temperature`) over the competing labels
    of the cosine similarity between the mention-in-context vector and each
    label's text (`descriptions[label]` with its name, else the name).
    """

    def __init__(self, weight: float = 0.5, temperature: float = 0.05, *,
                 descriptions: Optional[Mapping[str, str]] = None, mention_weight: float = 0.5,
                 window: int = 3, embedder: Optional[Embedder] = None):
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"weight mixes the two scores and must be in [0, 1], got {weight}")
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= mention_weight <= 1.0:
            raise ConfigError(f"mention_weight must be in [0, 1], got {mention_weight}")
        self.weight = weight
        self.temperature = temperature
        self.descriptions = dict(descriptions or {})
        self.mention_weight = mention_weight
        self.window = window
        self.embedder = embedder or shared_embedder()

    def _label_vectors(self, labels: Sequence[str]) -> np.ndarray:
        return self.embedder.encode([label_text(l, self.descriptions.get(l)) for l in labels])

    def _probs(self, v: np.ndarray, lab: np.ndarray) -> np.ndarray:
        """(mentions, labels) softmax of mention-in-context vs label similarity."""
        logits = (v @ lab.T) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def __call__(self, doc: Doc, candidates: List[Candidate]) -> List[Candidate]:
        return self.pipe([doc], [candidates])[0]

    def pipe(self, docs: Sequence[Doc], candidate_lists: Sequence[List[Candidate]]) -> List[List[Candidate]]:
        """Each doc's candidates re-scored; the competing mentions of all the docs take one encoder
        call (a call costs more than a text: 0.75 s for 300 texts in one, 1.03 s in 50)."""
        lists = [list(c) for c in candidate_lists]
        work = []  # (doc number, its conflict groups, the candidates in them)
        mentions: List[str] = []
        contexts: List[str] = []
        for d, (doc, candidates) in enumerate(zip(docs, lists)):
            groups = conflict_groups(candidates)
            if groups:
                members = sorted({i for group in groups for i in group})
                work.append((d, groups, members))
                mentions += [doc.text[candidates[i].start : candidates[i].end] for i in members]
                contexts += [_context(doc, candidates[i].start, candidates[i].end, self.window) for i in members]
        if not work:
            return lists
        both = self.embedder.encode(mentions + contexts)
        v = self.mention_weight * both[: len(mentions)] + (1 - self.mention_weight) * both[len(mentions) :]
        vectors = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)
        labels_all = sorted({lists[d][i].label for d, _, members in work for i in members})
        label_vecs = dict(zip(labels_all, self._label_vectors(labels_all)))
        first = 0  # the doc's first row in `vectors`
        for d, groups, members in work:
            candidates = lists[d]
            row_of = {i: first + r for r, i in enumerate(members)}
            first += len(members)
            for group in groups:
                labels = sorted({candidates[i].label for i in group})
                probs = self._probs(vectors[[row_of[i] for i in group]], np.stack([label_vecs[l] for l in labels]))
                for row, i in enumerate(group):
                    c = candidates[i]
                    p = float(probs[row, labels.index(c.label)])
                    candidates[i] = replace(c, score=(1 - self.weight) * c.score + self.weight * p)
        return lists


@registry.misc("uniner.Conflicts.v1")
def make_conflicts(weight: float = 0.5, temperature: float = 0.05,
                   descriptions: Optional[Dict[str, str]] = None, mention_weight: float = 0.5,
                   window: int = 3, model: Optional[str] = None,
                   disk_cache: bool = False) -> ConflictResolver:
    """`uniner.Conflicts.v1`: a Stage for the component's `stages` list."""
    return ConflictResolver(weight, temperature, descriptions=descriptions,
                            mention_weight=mention_weight, window=window,
                            embedder=shared_embedder(model, disk_cache))


@registry.misc("uniner.Consolidate.v1")
def make_consolidate(bonus: float = 0.0):
    """`uniner.Consolidate.v1`: merge repeated (span, label) candidates, keeping every source."""
    if not 0 <= bonus <= 1:
        raise ConfigError(f"bonus is added to a score per agreeing question and must be in [0, 1], got {bonus}")

    def stage(doc: Doc, candidates: List[Candidate]) -> List[Candidate]:
        return consolidate(candidates, bonus)
    return stage
