"""Label confusion, counted: the candidate spans several labels claimed, from a predictions file.

The counting behind `benchmarks/claims.py` (whose docstring explains the kinds).
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Optional, Set, Tuple

# labels that name a kind of thing every finer type of a data set is also one of
GENERIC = {"person", "organization", "organisation", "location", "else", "misc", "miscellaneous"}
Gold = Dict[Tuple[str, int, int], str]  # (text, start, end) -> gold label


def claims(path: Path, gold: Optional[Gold] = None) -> Dict[str, Dict[str, Any]]:
    """Per data set of a `quality.py` predictions file, and over `all`: the candidate spans, how many
    several labels claimed, and (with `gold`) how those split by the gold label."""
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
