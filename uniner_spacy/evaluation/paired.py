"""Two runs on the same sentences, compared pair-wise with a bootstrap (string protocol).

A difference of a few tenths of a point in mean F1 over a hundred sentences is mostly which
sentences were drawn: `compare` resamples the sentences of each data set (the same draw for both
runs), so the difference comes with an interval and the share of draws in which the second run
scores lower. `sentence_counts` turns gold and predicted query rows (`examples_to_predictions`'s,
or a predictions JSONL of `uniner-spacy evaluate`) into per-sentence counts.

    result = compare(sentence_counts(gold, run_a), sentence_counts(gold, run_b))
    result["mean"]  # {"f1_a", "f1_b", "diff", "ci95", "p_b_lower", "draws"}
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import InputError
from .protocols import string_counts

Counts = Tuple[int, int, int]  # true positives, false positives, false negatives


def sentence_counts(gold: Sequence[dict], predicted: Sequence[dict]) -> Dict[str, List[Counts]]:
    """Per data set, per sentence (in order): string-protocol counts summed over its types."""
    out: Dict[str, Dict[str, List[int]]] = defaultdict(dict)
    for g, p in zip(gold, predicted, strict=True):
        if (g["text"], g["type"], g["source"]) != (p["text"], p["type"], p["source"]):
            raise InputError(f"predictions are not for the gold queries: {p['text'][:40]!r} / {p['type']}")
        prf = string_counts(p["prediction"], g["prediction"])
        row = out[g["source"]].setdefault(g["text"], [0, 0, 0])
        row[0] += prf.tp
        row[1] += prf.fp
        row[2] += prf.fn
    return {name: [(tp, fp, fn) for tp, fp, fn in rows.values()] for name, rows in out.items()}


def f1(counts: np.ndarray) -> np.ndarray:
    """F1 from (..., 3) summed counts; 0 where nothing was predicted or expected."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def compare(a: Dict[str, List[Counts]], b: Dict[str, List[Counts]], draws: int = 2000, seed: int = 0) -> dict:
    """Run b against run a, per data set and for the mean over data sets: F1 of each, the difference,
    and (for the mean) its 95% bootstrap interval and the share of draws in which b scores lower.
    Each draw resamples the sentences of every data set, the same ones for both runs."""
    rng = np.random.default_rng(seed)
    rows, boot = [], []
    for name in a:
        ca, cb = np.array(a[name], dtype=float), np.array(b[name], dtype=float)
        idx = rng.integers(0, len(ca), size=(draws, len(ca)))
        fa, fb = f1(ca[idx].sum(1)), f1(cb[idx].sum(1))
        boot.append(fb - fa)
        da, db = float(f1(ca.sum(0))), float(f1(cb.sum(0)))
        rows.append({"dataset": name, "sentences": len(ca), "f1_a": round(100 * da, 2),
                     "f1_b": round(100 * db, 2), "diff": round(100 * (db - da), 2)})
    diff = np.mean(boot, axis=0)  # per draw: mean over data sets of b - a
    lo, hi = np.percentile(diff, [2.5, 97.5])
    mean_a = float(np.mean([r["f1_a"] for r in rows]))
    mean_b = float(np.mean([r["f1_b"] for r in rows]))
    return {"datasets": rows, "mean": {"f1_a": round(mean_a, 2), "f1_b": round(mean_b, 2),
                                       "diff": round(mean_b - mean_a, 2),
                                       "ci95": [round(100 * lo, 2), round(100 * hi, 2)],
                                       "p_b_lower": round(float(np.mean(diff < 0)), 3), "draws": draws}}
