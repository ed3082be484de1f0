"""Two runs of `quality.py` on the same sentences, compared pair-wise with a bootstrap
(`uniner_spacy.evaluation.paired`).

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
from typing import List

from quality import DATA, SUITES

from uniner_spacy.evaluation.paired import compare, sentence_counts


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
