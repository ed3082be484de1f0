"""How often one span is claimed by several labels: the student's label confusion, measured directly.

Reads a `quality.py` predictions file (best run with the stages off, so that
conflict resolution has not already picked one label:
`--component '{"stages": {}}'`) and prints, per data set and over all, the
candidate spans (distinct (text, start, end), from `doc.spans["uniner"]`,
which keeps overlaps that `doc.ents` cannot) and the share of them that more
than one label claimed.

    python benchmarks/claims.py RUN/zeroshot.predictions.jsonl [--gold zeroshot --limit 60]

With `--gold`, each line also splits the spans several labels claimed by the
suite's gold (the same texts), three ways: `generic_others`, the gold label and
only generic ones (`person` beside `writer`: true of a writer, and no question
about one type at a time can know that the data set calls a writer `writer`
only); `gold_among`, the gold label and others, not all generic (a choice
between siblings, which the conflict stage can get right); `gold_elsewhere`,
no gold span there, or another label's. The `all` line lists the commonest
(gold, other claimed label) pairs, and, for a run with the stages on, which label
`doc.ents` kept where a specific and a generic label competed on a gold span:
`specific_gold_kept` (the gold label is the specific one: `gold`, `generic` or
`other`) and `generic_gold_kept` (the gold label is the generic one: `gold`,
`specific` or `other`), which says whether preferring the finer label would pay.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Optional, Set, Tuple

# labels that name a kind of thing every finer type of a data set is also one of
GENERIC = {"person", "organization", "organisation", "location", "else", "misc", "miscellaneous"}
Gold = Dict[Tuple[str, int, int], str]  # (text, start, end) -> gold label


def claims(path: Path, gold: Optional[Gold] = None) -> Dict[str, Dict[str, Any]]:
    labels: Dict[str, Dict[Tuple[str, int, int], Set[str]]] = defaultdict(lambda: defaultdict(set))
    kept: Dict[Tuple[str, int, int], str] = {}  # what doc.ents wrote
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            for start, end in row.get("candidates", row.get("spans")) or []:  # candidates: overlaps kept
                labels[row["source"]][(row["text"], start, end)].add(row["type"])
            kept.update({(row["text"], start, end): row["type"] for start, end in row.get("spans") or []})
    out: Dict[str, Dict[str, Any]] = {}
    kinds: Counter = Counter()
    pairs: Counter = Counter()
    for source, spans in sorted(labels.items()):
        multi = {k: v for k, v in spans.items() if len(v) > 1}
        share = round(len(multi) / max(1, len(spans)), 4)
        out[source] = {"spans": len(spans), "multi_label": len(multi), "share": share}
        if gold is not None:
            mine = Counter(_kind(gold.get(k), v, pairs) for k, v in multi.items())
            out[source].update({k: mine[k] for k in KINDS})
            kinds.update(mine)
    every = sum(v["spans"] for v in out.values())
    multi = sum(v["multi_label"] for v in out.values())
    out["all"] = {"spans": every, "multi_label": multi, "share": round(multi / max(1, every), 4),
                  "mean_share": round(sum(v["share"] for v in out.values()) / max(1, len(out)), 4)}
    if gold is not None:
        out["all"].update({k: kinds[k] for k in KINDS})
        out["all"]["top_pairs"] = [[g, other, n] for (g, other), n in pairs.most_common(12)]
        out["all"].update(_kept(labels, kept, gold))
    return out


def _kept(labels: Dict[str, Dict[Tuple[str, int, int], Set[str]]], kept: Dict[Tuple[str, int, int], str],
          gold: Gold) -> Dict[str, Dict[str, int]]:
    specific: Counter = Counter()
    generic: Counter = Counter()
    for spans in labels.values():
        for k, claimed in spans.items():
            truth, final = gold.get(k), kept.get(k)
            if truth not in claimed or not claimed - GENERIC or not claimed & GENERIC:
                continue
            if truth in GENERIC:
                generic["gold" if final == truth else "specific" if final and final not in GENERIC else "other"] += 1
            else:
                specific["gold" if final == truth else "generic" if final in GENERIC else "other"] += 1
    return {"specific_gold_kept": dict(specific), "generic_gold_kept": dict(generic)}


KINDS = ("gold_among", "generic_others", "gold_elsewhere")


def _kind(truth: Optional[str], claimed: Set[str], pairs: Counter) -> str:
    if truth not in claimed:
        return "gold_elsewhere"
    pairs.update((truth, other) for other in claimed - {truth})
    return "generic_others" if truth not in GENERIC and claimed - {truth} <= GENERIC else "gold_among"


def load_gold(suite: str, limit: Optional[int]) -> Gold:
    """The suite's gold spans, over the texts quality.py evaluates (the first `limit` of each set)."""
    from quality import DATA, SUITES  # noqa: E402  (same folder)

    from uniner_spacy.evaluation.runner import load_files

    out: Gold = {}
    for path in SUITES[suite]:
        for ex in load_files([DATA / path], limit=limit):
            out.update({(ex.text, e.start, e.end): e.label for e in ex.entities})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions", type=Path)
    ap.add_argument("--gold", choices=["zeroshot", "supervised"], help="split the claims by this suite's gold")
    ap.add_argument("--limit", type=int, default=None, help="the first N texts of each set, as the run")
    args = ap.parse_args()
    gold = load_gold(args.gold, args.limit) if args.gold else None
    for source, row in claims(args.predictions, gold).items():
        print(json.dumps({"dataset": source, **row}))


if __name__ == "__main__":
    main()
