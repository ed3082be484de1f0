"""How often one span is claimed by several labels: the student's label confusion, measured directly.

Reads a `quality.py` predictions file (best run with the stages off, so that
conflict resolution has not already picked one label:
`--component '{"stages": {}}'`) and prints, per data set and over all, the
candidate spans (distinct (text, start, end), from `doc.spans["uniner"]`,
which keeps overlaps that `doc.ents` cannot) and the share of them that more
than one label claimed.

    python benchmarks/claims.py RUN/zeroshot.predictions.jsonl
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, Set, Tuple


def claims(path: Path) -> Dict[str, Dict[str, float]]:
    labels: Dict[str, Dict[Tuple[str, int, int], Set[str]]] = defaultdict(lambda: defaultdict(set))
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            for start, end in row.get("candidates", row.get("spans")) or []:  # candidates: overlaps kept
                labels[row["source"]][(row["text"], start, end)].add(row["type"])
    out = {}
    for source, spans in sorted(labels.items()):
        multi = sum(len(v) > 1 for v in spans.values())
        out[source] = {"spans": len(spans), "multi_label": multi, "share": round(multi / max(1, len(spans)), 4)}
    every = sum(v["spans"] for v in out.values())
    multi = sum(v["multi_label"] for v in out.values())
    out["all"] = {"spans": every, "multi_label": multi, "share": round(multi / max(1, every), 4),
                  "mean_share": round(sum(v["share"] for v in out.values()) / max(1, len(out)), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions", type=Path)
    args = ap.parse_args()
    for source, row in claims(args.predictions).items():
        print(json.dumps({"dataset": source, **row}))


if __name__ == "__main__":
    main()
