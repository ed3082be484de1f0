"""The two NER scoring protocols in use, as pure functions over plain inputs.

1. UniNER string protocol, identical to the official `src/eval/evaluate.py`:
   per (text, type) query, normalise mention strings SQuAD-style, de-duplicate
   both sides, a prediction is correct if its string is in the gold set of the
   same query; micro P/R/F1 over all queries of a data set; the benchmark score
   is the mean of per-data-set F1. Positions are not used.
2. Span protocol (InstructUIE / GLiNER): micro P/R/F1 over exact
   (start, end, type) character spans.

Queries travel as dicts, one per (text, type), the predictions JSONL format:
`{"text", "type", "prediction": [mention, ...] or a raw answer string,
"spans": [[start, end], ...] (optional)}`. F1 is a fraction in [0, 1].
"""
from __future__ import annotations

import json
import re
import string
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..io import jsonl_rows
from ..types import AnnotatedText

Query = Dict[str, Any]
_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass
class PRF:
    """Micro counts; precision, recall and F1 derive from them (0 when undefined)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: "PRF") -> "PRF":
        return PRF(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def to_dict(self) -> Dict[str, float]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


# ---------------------------------------------------------------- string protocol


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop whole-word a/an/the, collapse white space."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def official_answer_items(text: str) -> Tuple[List[Any], bool]:
    """The official parser's reading of a raw answer, before normalisation.

    Only a `[...]` at the very start counts, cut at the first `]` (the official
    non-greedy regex); anything else reads as []. Returns (items, ok).
    """
    match = re.match(r"\[(.*?)\]", text or "")
    if not match:
        return [], False
    try:
        items = json.loads(match.group())
    except json.JSONDecodeError:
        return [], False
    return (items, True) if isinstance(items, list) else ([], False)


def normalized_set(items: Union[str, Sequence[Any], None]) -> List[Any]:
    """Normalised, de-duplicated mentions in first-seen order, as the official parser keeps them.

    A raw answer string is parsed first. A list item becomes a tuple of
    normalised strings; any other non-string item makes the whole answer [],
    exactly as the official `except Exception: return []` does.
    """
    if items is None:
        return []
    if isinstance(items, str):
        items = official_answer_items(items)[0]
    out: List[Any] = []
    try:
        for item in items:
            norm = (tuple(normalize_answer(x) for x in item) if isinstance(item, (list, tuple))
                    else normalize_answer(item))
            if norm not in out:
                out.append(norm)
    except (AttributeError, TypeError):
        return []
    return out


def string_counts(prediction: Union[str, Sequence[Any], None],
                  gold: Union[str, Sequence[Any], None]) -> PRF:
    """One query's counts under the string protocol."""
    pred, gold_set = normalized_set(prediction), normalized_set(gold)
    tp = sum(1 for p in pred if p in gold_set)
    return PRF(tp, len(pred) - tp, len(gold_set) - tp)


def score_strings(pairs: Iterable[Tuple[Any, Any]]) -> PRF:
    """Micro counts over (prediction, gold) pairs of one data set."""
    total = PRF()
    for pred, gold in pairs:
        total = total + string_counts(pred, gold)
    return total


# ---------------------------------------------------------------- span protocol


def span_counts(predicted: Iterable[Sequence[Any]], gold: Iterable[Sequence[Any]]) -> PRF:
    """Counts over exact spans: tuples such as (start, end) or (start, end, type)."""
    pred_set = {tuple(s) for s in predicted}
    gold_set = {tuple(s) for s in gold}
    tp = len(pred_set & gold_set)
    return PRF(tp, len(pred_set) - tp, len(gold_set) - tp)


def score_span_examples(predicted: Sequence[AnnotatedText], gold: Sequence[AnnotatedText]) -> PRF:
    """Micro span counts over paired Examples, (start, end, label) exact match."""
    total = PRF()
    for p, g in zip(predicted, gold):
        total = total + span_counts(((e.start, e.end, e.label) for e in p.entities),
                                    ((e.start, e.end, e.label) for e in g.entities))
    return total


def benchmark_score(f1_per_dataset: Mapping[str, float]) -> float:
    """The UniNER benchmark figure: the plain mean of per-data-set F1."""
    return sum(f1_per_dataset.values()) / len(f1_per_dataset) if f1_per_dataset else 0.0


# ---------------------------------------------------------------- queries


def examples_to_predictions(examples: Sequence[AnnotatedText],
                            unlocated: Iterable[Tuple[int, str, str]] = ()) -> List[Query]:
    """One query dict per (example, label), gold as if predicted (gold=pred scores 1.0).

    `unlocated` (from `loaders.load_report`) adds gold mentions that have no
    offsets to the string side, so the string protocol still counts them.
    """
    extra: Dict[Tuple[int, str], List[str]] = defaultdict(list)
    for i, label, mention in unlocated:
        extra[(i, label)].append(mention)
    rows: List[Query] = []
    for i, eg in enumerate(examples):
        for label in eg.labels:
            ents = [e for e in eg.entities if e.label == label]
            mentions = list(dict.fromkeys([eg.text[e.start:e.end] for e in ents] + extra[(i, label)]))
            rows.append({"text": eg.text, "type": label, "prediction": mentions,
                         "spans": [[e.start, e.end] for e in ents], "source": eg.source})
    return rows


def score_queries(gold: Sequence[Query], predicted: Sequence[Optional[Query]],
                  spans: Optional[bool] = None) -> Dict[str, Any]:
    """Both protocols over aligned query lists (None: no prediction for that query).

    `spans=None` scores spans only if some prediction carries them.
    """
    if spans is None:
        spans = any(p is not None and "spans" in p for p in predicted)
    strings, span_prf, malformed = PRF(), PRF(), 0
    for g, p in zip(gold, predicted):
        answer = None if p is None else p.get("prediction")
        if isinstance(answer, str) and not official_answer_items(answer)[1]:
            malformed += 1
        strings = strings + string_counts(answer, g.get("prediction"))
        if spans:
            pred_spans = [] if p is None else [(s, e) for s, e in p.get("spans", [])]
            span_prf = span_prf + span_counts(pred_spans, [(s, e) for s, e in g.get("spans", [])])
    return {
        "queries": len(gold),
        "missing_predictions": sum(1 for p in predicted if p is None),
        "malformed_answers": malformed,
        "string": strings.to_dict(),
        "span": span_prf.to_dict() if spans else None,
    }


def align_predictions(gold: Sequence[Query], predicted: Iterable[Query]) -> Tuple[List[Optional[Query]], int]:
    """Match predictions to gold queries by (text, type), in order for repeated keys.

    Returns the aligned list (None where a query got no prediction) and how
    many predictions matched no gold query.
    """
    pool: Dict[Tuple[str, str], Deque[Query]] = defaultdict(deque)
    for p in predicted:
        pool[(p["text"], p["type"])].append(p)
    aligned = [pool[(g["text"], g["type"])].popleft() if pool.get((g["text"], g["type"])) else None
               for g in gold]
    return aligned, sum(len(q) for q in pool.values())


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: Union[str, Path]) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def score_files(gold_path: Union[str, Path], pred_path: Union[str, Path], *,
                gold_format: Optional[str] = None,
                label_map: Optional[Mapping[str, Optional[str]]] = None,
                limit: Optional[int] = None) -> Dict[str, Any]:
    """Score a predictions JSONL against any supported gold file, both protocols.

    Gold expands to one query per (example, label of its data set); a query
    with no prediction counts as an empty answer (reported as missing).
    """
    from .loaders import load_report

    loaded = load_report(gold_path, gold_format, label_map, limit)
    gold = examples_to_predictions(loaded.examples, loaded.unlocated)
    aligned, extra = align_predictions(gold, (row for _, row in jsonl_rows(pred_path)))
    result = score_queries(gold, aligned)
    result.update({"dataset": loaded.source, "format": loaded.format,
                   "examples": len(loaded.examples), "extra_predictions": extra,
                   "unlocated_gold": len(loaded.unlocated)})
    return result
