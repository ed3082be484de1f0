"""Type statistics of teacher annotations: frequency table and head/middle/tail buckets.

    python -m training.stats corpus/annotations.jsonl --out corpus/type_stats.md \
        [--json corpus/type_stats.json] [--plot corpus/type_stats.png]

The buckets are those of the UniNER paper's Table 1: the share of mentions held
by the top 1% of types (by frequency), by the next 9% (1-10%), and by the rest.
The plot (rank-frequency, log-log) is drawn only when matplotlib is installed.
"""
from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from uniner_spacy.io import jsonl_rows


def type_counts(path: Path) -> Counter:
    counts: Counter = Counter()
    for _, row in jsonl_rows(path):
        for ent in row.get("entities", []):
            counts[ent["type"]] += 1
    return counts


def buckets(counts: Counter) -> List[Dict[str, object]]:
    """[head (top 1%), middle (1-10%), tail (rest)] with types, mentions, share, examples."""
    ranked = [t for t, _ in counts.most_common()]
    total = sum(counts.values())
    n = len(ranked)
    head = max(1, math.ceil(0.01 * n)) if n else 0
    middle = max(head, math.ceil(0.10 * n)) if n else 0
    parts = [("top 1%", ranked[:head]), ("1-10%", ranked[head:middle]), ("rest", ranked[middle:])]
    out = []
    for name, types in parts:
        mentions = sum(counts[t] for t in types)
        out.append({"bucket": name, "types": len(types), "mentions": mentions,
                    "share": mentions / total if total else 0.0, "examples": types[:8]})
    return out


def markdown(counts: Counter, parts: List[Dict[str, object]], annotation_stats: Optional[dict], top: int) -> str:
    total = sum(counts.values())
    lines = ["# Teacher annotation statistics", ""]
    if annotation_stats:
        s = annotation_stats
        lines += [f"{s.get('passages')} passages ({s.get('failed', 0)} failed), "
                  f"{s.get('mentions_kept')} mentions kept, {s.get('mentions_dropped')} dropped, "
                  f"{len(counts)} types.", ""]
        if s.get("dropped"):
            lines += ["| dropped because | mentions |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in sorted(s["dropped"].items(), key=lambda kv: -kv[1])]
            lines.append("")
        usage = s.get("usage") or {}
        if usage:
            lines += [f"Teacher usage: {usage.get('requests')} requests, {usage.get('cache_hits')} cache hits, "
                      f"{usage.get('prompt_tokens')} prompt + {usage.get('completion_tokens')} completion tokens, "
                      f"cost {usage.get('cost')}.", ""]
    lines += ["## Buckets (UniNER Table 1: Pile-NER 74% / 19% / 7%)", "",
              "| types by frequency | types | mentions | share | examples |", "|---|---|---|---|---|"]
    for b in parts:
        lines.append(f"| {b['bucket']} | {b['types']} | {b['mentions']} | {100 * b['share']:.1f}% | "
                     f"{', '.join(b['examples'])} |")
    lines += ["", f"## Most frequent types (of {len(counts)}; {total} mentions)", "",
              "| type | mentions | share |", "|---|---|---|"]
    for t, c in counts.most_common(top):
        lines.append(f"| {t} | {c} | {100 * c / total:.1f}% |")
    return "\n".join(lines) + "\n"


def plot(counts: Counter, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    freq = [c for _, c in counts.most_common()]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.loglog(range(1, len(freq) + 1), freq, marker=".", linestyle="none")
    ax.set_xlabel("type rank")
    ax.set_ylabel("mentions")
    ax.set_title("Teacher types: rank vs frequency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("annotations", type=Path)
    p.add_argument("--out", type=Path, required=True, help="Markdown report")
    p.add_argument("--json", type=Path, help="also the numbers as JSON")
    p.add_argument("--plot", type=Path, help="PNG plot (skipped without matplotlib)")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args(argv)
    counts = type_counts(args.annotations)
    parts = buckets(counts)
    stats_path = args.annotations.with_suffix(".stats.json")
    annotation_stats = json.loads(stats_path.read_text()) if stats_path.exists() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(counts, parts, annotation_stats, args.top), encoding="utf-8")
    result = {"types": len(counts), "mentions": sum(counts.values()), "buckets": parts,
              "frequencies": dict(counts.most_common())}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    if args.plot:
        drawn = plot(counts, args.plot)
        result["plot"] = str(args.plot) if drawn else None
        if not drawn:
            print("matplotlib is not installed: no plot", flush=True)
    print(json.dumps({"types": result["types"], "mentions": result["mentions"],
                      "shares": [round(b["share"], 3) for b in parts]}))
    return result


if __name__ == "__main__":
    main()
