"""Two runs of `quality.py` on the same sentences, compared pair-wise with a bootstrap.

A difference of a few tenths of a point in mean F1 over 140 sentences is
mostly which sentences were drawn: this resamples the sentences of each data
set (the same draw for both runs), so the figure comes with an interval and
the share of draws in which the second run scores lower. Prints one JSON line
per data set and a last line for the mean over data sets (string protocol).

    python benchmarks/paired.py unconstrained/zeroshot.predictions.jsonl \\
        constrained/zeroshot.predictions.jsonl --suite zeroshot --limit 20
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from quality import DATA, SUITES

Counts = Tuple[int, int, int]  # true positives, false positives, false negatives


def sentence_counts(gold: Sequence[dict], predicted: Sequence[dict]) -> Dict[str, List[Counts]]:
    """Per data set, per sentence (in order): string-protocol counts summed over its types."""
    from uniner_spacy.evaluation.protocols import string_counts

    out: Dict[str, Dict[str, List[int]]] = defaultdict(dict)
    for g, p in zip(gold, predicted, strict=True):
        if (g["text"], g["type"], g["source"]) != (p["text"], p["type"], p["source"]):
            raise ValueError(f"predictions are not for the gold queries: {p['text'][:40]!r} / {p['type']}")
        prf = string_counts(p["prediction"], g["prediction"])
        row = out[g["source"]].setdefault(g["text"], [0, 0, 0])
        row[0] += prf.tp
        row[1] += prf.fp
        row[2] += prf.fn
    return {name: [tuple(c) for c in rows.values()] for name, rows in out.items()}


def f1(counts: np.ndarray) -> np.ndarray:
    """F1 from (..., 3) summed counts; 0 where nothing was predicted or expected."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def compare(a: Dict[str, List[Counts]], b: Dict[str, List[Counts]], draws: int = 2000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    rows, boot = [], []
    for name in a:
        ca, cb = np.array(a[name], dtype=float), np.array(b[name], dtype=float)
        idx = rng.integers(0, len(ca), size=(draws, len(ca)))
        fa, fb = f1(ca[idx].sum(1)), f1(cb[idx].sum(1))
        boot.append(fb - fa)
        da, db = f1(ca.sum(0)), f1(cb.sum(0))
        rows.append({"dataset": name, "sentences": len(ca), "f1_a": round(100 * da, 2),
                     "f1_b": round(100 * db, 2), "diff": round(100 * (db - da), 2)})
    diff = np.mean(boot, axis=0)  # per draw: mean over data sets of b - a
    lo, hi = np.percentile(diff, [2.5, 97.5])
    mean_a = np.mean([r["f1_a"] for r in rows])
    mean_b = np.mean([r["f1_b"] for r in rows])
    return {"datasets": rows, "mean": {"f1_a": round(mean_a, 2), "f1_b": round(mean_b, 2),
                                       "diff": round(mean_b - mean_a, 2),
                                       "ci95": [round(100 * lo, 2), round(100 * hi, 2)],
                                       "p_b_lower": round(float(np.mean(diff < 0)), 3), "draws": draws}}


def gold_queries(suite: str, limit: int, data: Path) -> List[dict]:
    from uniner_spacy.evaluation.protocols import examples_to_predictions
    from uniner_spacy.evaluation.runner import load_files

    examples = load_files([data / rel for rel in SUITES[suite]], limit=limit)  # as quality.py loads them
    by_source = defaultdict(list)
    for eg in examples:
        by_source[eg.source].append(eg)
    # quality.py writes each data set's queries together, in the order the data sets come
    return [q for group in by_source.values() for q in examples_to_predictions(group)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="predictions of the first run (quality.py's *.predictions.jsonl)")
    ap.add_argument("b", type=Path, help="predictions of the second run, on the same sentences")
    ap.add_argument("--suite", default="zeroshot", choices=sorted(SUITES))
    ap.add_argument("--limit", type=int, required=True, help="the limit both runs used")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--draws", type=int, default=2000)
    args = ap.parse_args()
    gold = gold_queries(args.suite, args.limit, args.data)

    from uniner_spacy.io import jsonl_rows

    def read(path: Path) -> List[dict]:
        return [row for _, row in jsonl_rows(path)]

    result = compare(sentence_counts(gold, read(args.a)), sentence_counts(gold, read(args.b)), args.draws)
    for row in result["datasets"]:
        print(json.dumps(row))
    print(json.dumps({"a": str(args.a), "b": str(args.b), "limit": args.limit, **result["mean"]}))


if __name__ == "__main__":
    main()
