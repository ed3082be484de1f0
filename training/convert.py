"""Annotations → UniNER multi-turn training conversations (`uniner_spacy.conversations`).

    python -m training.convert --annotations corpus/annotations.jsonl \
        --out corpus/conversations.jsonl [--uniner-json corpus/conversations.json]
    python -m training.convert --pile-ner pile-ner-type.json --out ...     # published Pile-NER-type
    python -m training.convert --data conll2003/train.txt --dataset-prompt --out ...   # supervised sets
    python -m training.convert --feedback reviewed.jsonl --propose-rules rules.yaml --out ...  # corrections

One conversation per passage: all its types asked in shuffled order, plus
negative types answered `[]`, sampled from the whole type collection (the
`--negative-pool` most frequent types) in proportion to type frequency. Teacher
annotations from `training.annotate`, the published Pile-NER-type JSON
(`[{"conversations": [...]}]`) and any data set the evaluation loaders read (with
their natural-language label names, negatives only from each set's own labels)
can be mixed; `--dataset-prompt` uses the dataset-specific template and
`--definitions` (+ `--definition-mode`) asks with type definitions.
Writes `<out>` (read by `training.train --data`), `<out stem>.stats.json` and,
with `--uniner-json`, the official conversation JSON.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional, Sequence

from training.conversations import (
    BuildOptions,
    build_conversations,
    load_definitions,
    negative_share,
    type_frequencies,
    write_jsonl,
    write_uniner_json,
)
from uniner_spacy.io import jsonl_rows
from uniner_spacy.types import AnnotatedText, Entity


def read_annotations(path: Path, source: str = "teacher") -> List[AnnotatedText]:
    """`training.annotate` output → Examples (labels filled in later); failed passages skipped."""
    out = []
    for _, row in jsonl_rows(path):
        if row.get("error"):
            continue
        ents = [Entity(int(s), int(e), ent["type"]) for ent in row.get("entities", []) for s, e in ent["spans"]]
        out.append(AnnotatedText(text=row["text"], entities=ents, labels=[], source=source))
    return out


def open_type_pool(examples: Sequence[AnnotatedText], size: int) -> List[str]:
    """The negative-type collection: the `size` most frequent types (all when 0)."""
    freq = type_frequencies(examples)
    return [t for t, _ in freq.most_common(size or None)]


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--annotations", type=Path, nargs="*", default=[], help="training.annotate JSONL files")
    p.add_argument("--pile-ner", type=Path, nargs="*", default=[], help="published Pile-NER-type JSON files")
    p.add_argument("--data", type=Path, nargs="*", default=[], help="supervised data files (evaluation loaders)")
    p.add_argument("--feedback", type=Path, nargs="*", default=[],
                   help="reviewed corrections (JSONL or DocBin, uniner_spacy.feedback): kept spans are gold, "
                        "rejections teach []")
    p.add_argument("--propose-rules", type=Path,
                   help="write block-list rules learned from repeated rejections here (YAML, for review)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--uniner-json", type=Path, help="also write the official UniNER conversation JSON")
    p.add_argument("--negative-share", type=float, default=0.3, help="wanted share of `[]` answers")
    p.add_argument("--negative-pool", type=int, default=2000, help="open-type negatives: most frequent N types")
    p.add_argument("--negative-types", default="",
                   help="comma-separated types always in the negative pool (e.g. the labels you will ask)")
    p.add_argument("--max-turns", type=int, default=24)
    p.add_argument("--dataset-prompt", action="store_true", help="`Dataset: {name} Text: ...` for --data sets")
    p.add_argument("--definitions", type=Path, help="type → definition JSON (SLIMER format)")
    p.add_argument("--definition-mode", choices=["type", "definition", "both"], default="type")
    p.add_argument("--limit", type=int, default=None, help="first N texts of each --data file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not (args.annotations or args.pile_ner or args.data or args.feedback):
        p.error("give --annotations, --pile-ner, --data or --feedback")

    from uniner_spacy.distill.feedback import propose_block_list, read_corrections, snippet_yaml, to_examples
    from uniner_spacy.evaluation.loaders import load, source_name

    open_sets: List[List[AnnotatedText]] = []
    for path in args.annotations:
        open_sets.append(read_annotations(path, source=f"teacher:{path.stem}"))
    for path in args.pile_ner:
        examples = load(path, format="conversation", source=f"pile_ner:{path.stem}")
        # Pile-NER asks only the types a passage mentions: negatives come from the whole collection
        open_sets.append([AnnotatedText(e.text, e.entities, [], e.source) for e in examples])
    supervised: List[AnnotatedText] = []
    for path in args.data:
        supervised.extend(load(path, limit=args.limit, source=source_name(path)))

    corrections = [c for path in args.feedback for c in read_corrections(path)]
    supervised.extend(to_examples(corrections))
    if args.propose_rules:
        args.propose_rules.write_text(snippet_yaml(propose_block_list(corrections)))

    open_examples = [e for group in open_sets for e in group]
    pool = open_type_pool(open_examples, args.negative_pool)
    pool += [t.strip() for t in args.negative_types.split(",") if t.strip() and t.strip() not in pool]
    for ex in open_examples:
        ex.labels = pool
    examples = open_examples + supervised
    definitions = load_definitions(args.definitions) if args.definitions else None
    options = BuildOptions(negative_share=args.negative_share, max_turns=args.max_turns, definitions=definitions,
                           definition_mode=args.definition_mode, seed=args.seed)
    freq = type_frequencies(examples)
    conversations = build_conversations(open_examples, options, frequencies=freq)
    if supervised:
        sup_options = BuildOptions(**{**options.__dict__, "dataset_prompt": args.dataset_prompt})
        conversations += build_conversations(supervised, sup_options, frequencies=freq)
    write_jsonl(conversations, args.out)
    if args.uniner_json:
        write_uniner_json(conversations, args.uniner_json)

    per_source: dict = {}
    for conv in conversations:
        s = per_source.setdefault(conv.source, {"conversations": 0, "turns": 0, "negatives": 0, "types": set()})
        s["conversations"] += 1
        s["turns"] += len(conv.turns)
        s["negatives"] += conv.n_negative
        s["types"].update(conv.types)
    stats = {
        "conversations": len(conversations),
        "turns": sum(len(c.turns) for c in conversations),
        "negative_share": round(negative_share(conversations), 4),
        "distinct_types": len({t for c in conversations for t in c.types}),
        "examples": len(examples),
        "examples_without_turns": len(examples) - len(conversations),
        "sources": {k: {**v, "types": len(v["types"])} for k, v in per_source.items()},
    }
    args.out.with_suffix(".stats.json").write_text(json.dumps(stats, indent=1))
    print(json.dumps({k: stats[k] for k in ("conversations", "turns", "negative_share", "distinct_types")}))
    return stats


if __name__ == "__main__":
    main()
