"""How far a perfect type chooser or verifier would lift a run: oracles over the student's own spans.

Reads a `quality.py` predictions file of a run with the stages on (its rows carry every candidate
span of each label, overlaps included) and the suite's gold, and scores four outputs per data set
under the string protocol:
  default  the run's `doc.ents`
  choose   each written entity moved to its gold label where that label also claimed the same span
  verify   each written entity kept only where it is right (its text is a gold mention of its label)
  both     choose, then verify
The spans never change: what is measured is the room above the stage that picks among the labels
that claimed a span (issue 35). Prints one JSON line per data set and one with the means; with
`--write DIR`, also each oracle's predictions (for `paired.py`).

    python benchmarks/ceiling.py RUN/zeroshot.predictions.jsonl --suite zeroshot --limit 60
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

from quality import DATA, SUITES

ORACLES = ("default", "choose", "verify", "both")
Span = Tuple[int, int]


def oracles(gold: Sequence[dict], predicted: Sequence[dict]) -> Dict[str, List[dict]]:
    """Each oracle's predictions, one row per gold query, in the gold's order."""
    from uniner_spacy.evaluation.protocols import normalized_set

    claimed: Dict[Tuple[str, Span], Set[str]] = defaultdict(set)  # (text, span) -> labels that claimed it
    gold_label: Dict[Tuple[str, Span], str] = {}
    gold_strings: Dict[Tuple[str, str], List] = {}
    for g, p in zip(gold, predicted, strict=True):
        if (g["text"], g["type"]) != (p["text"], p["type"]):
            raise ValueError(f"predictions are not for the gold queries: {p['text'][:40]!r} / {p['type']}")
        for s, e in p.get("candidates", p["spans"]):
            claimed[(p["text"], (s, e))].add(p["type"])
        for s, e in g["spans"]:
            gold_label[(g["text"], (s, e))] = g["type"]
        gold_strings[(g["text"], g["type"])] = normalized_set(g["prediction"])
    moved: Dict[str, Dict[Tuple[str, str], List[Tuple[str, Span]]]] = {k: defaultdict(list) for k in ORACLES}
    for p in predicted:
        text = p["text"]
        for s, e in p["spans"]:
            mention, here = text[s:e], (text, (s, e))
            right = gold_label.get(here)
            chosen = right if right in claimed[here] else p["type"]
            moved["default"][(text, p["type"])].append((mention, (s, e)))
            moved["choose"][(text, chosen)].append((mention, (s, e)))
            for name, label in (("verify", p["type"]), ("both", chosen)):
                if normalized_set([mention])[0] in gold_strings.get((text, label), []):
                    moved[name][(text, label)].append((mention, (s, e)))
    out: Dict[str, List[dict]] = {}
    for name in ORACLES:
        out[name] = [{**{k: p[k] for k in ("text", "type", "source")},
                      "prediction": list(dict.fromkeys(m for m, _ in moved[name][(p["text"], p["type"])])),
                      "spans": [list(sp) for _, sp in moved[name][(p["text"], p["type"])]]}
                     for p in predicted]
    return out


def f1_by_source(gold: Sequence[dict], predicted: Sequence[dict]) -> Dict[str, float]:
    """String-protocol F1 (×100) of each data set, in the gold's order of data sets."""
    from uniner_spacy.evaluation.protocols import score_queries

    out: Dict[str, float] = {}
    for source in dict.fromkeys(g["source"] for g in gold):
        idx = [i for i, g in enumerate(gold) if g["source"] == source]
        out[source] = 100 * score_queries([gold[i] for i in idx], [predicted[i] for i in idx])["string"]["f1"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions", type=Path)
    ap.add_argument("--suite", choices=sorted(SUITES), default="zeroshot")
    ap.add_argument("--limit", type=int, required=True, help="the first N texts of each set, as the run")
    ap.add_argument("--write", type=Path, default=None, help="a folder for each oracle's predictions")
    args = ap.parse_args()
    from uniner_spacy.evaluation.protocols import examples_to_predictions
    from uniner_spacy.evaluation.runner import load_files

    gold = examples_to_predictions(load_files([DATA / p for p in SUITES[args.suite]], limit=args.limit))
    predicted = [json.loads(line) for line in args.predictions.open()]
    outs = oracles(gold, predicted)
    means: Dict[str, List[float]] = defaultdict(list)
    scores = {name: f1_by_source(gold, outs[name]) for name in ORACLES}
    for source in scores["default"]:
        row: Dict[str, object] = {"dataset": source}
        for name in ORACLES:
            row[name] = round(scores[name][source], 2)
            means[name].append(scores[name][source])
        print(json.dumps(row))
    print(json.dumps({"dataset": "mean", **{k: round(sum(v) / len(v), 2) for k, v in means.items()}}))
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for name in ORACLES:
            with (args.write / f"{name}.predictions.jsonl").open("w") as f:
                f.writelines(json.dumps(r) + "\n" for r in outs[name])


if __name__ == "__main__":
    main()
