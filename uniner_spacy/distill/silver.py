"""The teacher's annotations (`uniner-spacy annotate` rows) cleaned into training docs for a spaCy `ner`.

A spaCy `ner` reads every token without an entity as "not an entity", so a silver label the teacher
is unsure of does more harm kept as "outside" than left unknown: each filter here either drops a
document or marks a span *missing* (`Doc.set_ents(missing=...)`, no loss either way), never turns a
doubtful entity into a negative. Every filter is a setting of `SilverFilters`, and `SilverReport`
counts what each one did, so its effect can be measured (benchmarks/distill.py).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from spacy.tokens import Span

from ..io import OK, STATUS
from ..types import Stats, label_key


@dataclass
class SilverFilters:
    """Which documents and spans of the teacher's output a student learns from."""

    # documents with an answer cut at the token limit: what was cut off would be taught as "outside"
    drop_truncated: bool = True
    # entities scoring below this (one value, or {label: value}) are marked missing, not outside
    min_score: Union[float, Mapping[str, float]] = 0.0
    # a name given several labels across the corpus takes its majority label when that label holds
    # at least `consistency` of its occurrences; below that its spans are marked missing (0: off)
    consistency: float = 0.0
    # candidates the teacher found but did not keep as entities (another label won, or a
    # threshold dropped them) are marked missing where no entity covers them
    unsure_candidates: bool = False

    def __post_init__(self) -> None:
        # per-label thresholds by `label_key`, built once rather than once per entity
        self._by_key = ({label_key(name): float(value) for name, value in self.min_score.items()}
                        if isinstance(self.min_score, Mapping) else None)

    def threshold(self, label: str) -> float:
        """The threshold of `label`, its name matched as labels are everywhere (`label_key`)."""
        if self._by_key is not None:
            return self._by_key.get(label_key(label), 0.0)
        return float(self.min_score)  # type: ignore[arg-type]


@dataclass
class SilverReport:
    rows: int = 0
    documents: int = 0
    entities: int = 0
    not_complete: int = 0  # rows whose status is not "ok" (a rerun of annotate retries them)
    truncated: int = 0  # documents dropped by drop_truncated
    low_score: int = 0  # entities marked missing by min_score
    relabelled: int = 0  # entities given their name's majority label
    inconsistent: int = 0  # entities marked missing for lack of a majority label
    unsure: int = 0  # candidate spans marked missing
    misaligned: int = 0  # entities that do not fall on spaCy token boundaries
    per_label: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


Scored = Tuple[int, int, str, float]  # start, end, label, score


def _spans(items: Iterable[Mapping[str, Any]], labels: Optional[Sequence[str]]) -> List[Scored]:
    keep = {label_key(label) for label in labels} if labels else None
    out = []
    for e in items:
        if keep is None or label_key(str(e["label"])) in keep:
            score = e.get("score")
            out.append((int(e["start"]), int(e["end"]), str(e["label"]), 1.0 if score is None else float(score)))
    return out


def majority_labels(rows: Sequence[Mapping[str, Any]], share: float) -> Dict[str, Optional[str]]:
    """{name: its majority label, or None when no label holds `share` of its occurrences}, for names
    the teacher labelled in more than one way; names are compared case-insensitively."""
    seen: Dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        for e in row.get("ents", []):
            seen[str(e["text"]).lower()][str(e["label"])] += 1
    out: Dict[str, Optional[str]] = {}
    for name, counts in seen.items():
        if len(counts) < 2:
            continue
        label, n = counts.most_common(1)[0]
        out[name] = label if n / sum(counts.values()) >= share else None
    return out


def calibrated_thresholds(rows: Sequence[Mapping[str, Any]], gold: Sequence[Iterable[Tuple[int, int, str]]],
                          labels: Sequence[str]) -> Dict[str, float]:
    """Per label, the score threshold at which the teacher's entities on a few gold-labelled documents
    match the gold best (span F1; the lowest such threshold, to keep recall).

    A threshold in the teacher's raw score means something different per label (a 135M model is
    surer of names than of "miscellaneous"), so one value for all labels keeps noise of one label
    and drops good spans of another. `gold[i]` holds the (start, end, label) of `rows[i]`'s text,
    in the teacher's label names.
    """
    out: Dict[str, float] = {}
    for label in labels:
        key = label_key(label)
        truth = [{(s, e) for s, e, g in spans if label_key(g) == key} for spans in gold]
        scored = [(score, (start, end) in truth[i]) for i, row in enumerate(rows)
                  for start, end, _, score in _spans(row.get("ents", []), [label])]
        n_gold = sum(len(t) for t in truth)
        best, best_f1 = 0.0, -1.0
        for threshold in sorted({0.0, *(score for score, _ in scored)}):
            tp = sum(ok for score, ok in scored if score >= threshold)
            kept = sum(score >= threshold for score, _ in scored)
            f1 = 2 * tp / (kept + n_gold) if kept + n_gold else 0.0
            if f1 > best_f1 + 1e-12:
                best, best_f1 = threshold, f1
        out[label] = math.floor(best * 1e4) / 1e4  # rounded down: the spans at it stay
    return out


def silver_docs(nlp, rows: Sequence[Mapping[str, Any]], filters: SilverFilters,
                labels: Optional[Sequence[str]] = None) -> Tuple[List[Any], SilverReport]:
    """spaCy docs with `ents` (and missing spans) from the teacher's rows; `nlp` tokenizes.

    `labels` keeps only those labels (default: all the teacher wrote).
    """
    report = SilverReport(rows=len(rows))
    usable = [r for r in rows if r.get(STATUS, OK) == OK]
    report.not_complete = len(rows) - len(usable)
    majority = majority_labels(usable, filters.consistency) if filters.consistency > 0 else {}
    per_label: Counter = Counter()
    docs = []
    for row in usable:
        if filters.drop_truncated and Stats.from_dict(row.get("stats") or {}).truncated:
            report.truncated += 1
            continue
        doc = nlp.make_doc(row["text"])
        ents, missing = [], []
        for start, end, label, score in _spans(row.get("ents", []), labels):
            span = doc.char_span(start, end, alignment_mode="strict")
            if span is None:
                report.misaligned += 1
                continue
            name = doc.text[start:end].lower()
            if name in majority:
                if majority[name] is None:
                    report.inconsistent += 1
                    missing.append(span)
                    continue
                if majority[name] != label:
                    report.relabelled += 1
                    label = majority[name]  # type: ignore[assignment]
            if score < filters.threshold(label):
                report.low_score += 1
                missing.append(span)
                continue
            ents.append(Span(doc, span.start, span.end, label=label))
            per_label[label] += 1
        if filters.unsure_candidates:
            covered = {i for e in ents for i in range(e.start, e.end)}
            for start, end, _, _ in _spans(row.get("spans", []), labels):
                span = doc.char_span(start, end, alignment_mode="strict")
                if span is not None and not covered & set(range(span.start, span.end)):
                    report.unsure += 1
                    missing.append(span)
        doc.set_ents(ents, missing=_outside(missing, ents), default="outside")
        docs.append(doc)
    report.documents = len(docs)
    report.entities = sum(per_label.values())
    report.per_label = dict(per_label)
    return docs, report


def _outside(missing: List[Any], ents: List[Any]) -> List[Any]:
    """Missing spans that overlap no entity (set_ents rejects a token that is both)."""
    out, used = [], {i for e in ents for i in range(e.start, e.end)}
    for span in missing:
        tokens = set(range(span.start, span.end))
        if not tokens & used:
            out.append(span)
            used |= tokens
    return out
