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
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from uniner_spacy.evaluation.claims import Gold, claims  # noqa: E402


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
