"""Distil the teacher's annotations into a regular spaCy `ner` pipeline, and compare it with the student.

    python -m training.distill_spacy docbin corpus/annotations.jsonl --out corpus/spacy --labels person,city
    python -m spacy init config corpus/spacy/config.cfg --lang en --pipeline ner --optimize efficiency
    python -m spacy train corpus/spacy/config.cfg --paths.train corpus/spacy/train.spacy \
        --paths.dev corpus/spacy/dev.spacy --output corpus/spacy/model
    python -m training.distill_spacy compare corpus/spacy/model/model-best DATA --student metrics.json \
        --out corpus/spacy/compare.json

`docbin` writes train/dev DocBin files (a `--dev-share` split with `--seed`):
mentions are aligned to spaCy tokens (`contract`), overlapping spans resolved
longest-first (`spacy.util.filter_spans`), and every mention lost on the way is
counted. `--labels` keeps only those types (default: the `--top` most frequent),
since a CNN tagger cannot learn thousands of open types from a small corpus.
`compare` scores the spaCy pipeline with the span protocol on the evaluation
files (labels the pipeline knows) and times it, next to the student's metrics.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Optional, Sequence

from uniner_spacy.io import jsonl_rows


def to_docbins(annotations: Path, out: Path, labels: Optional[Sequence[str]], top: int, dev_share: float,
               seed: int) -> dict:
    import spacy
    from spacy.tokens import DocBin
    from spacy.util import filter_spans

    rows = [row for _, row in jsonl_rows(annotations)]
    rows = [r for r in rows if not r.get("error")]
    freq = Counter(e["type"] for r in rows for e in r.get("entities", []))
    keep = set(labels) if labels else {t for t, _ in freq.most_common(top)}
    nlp = spacy.blank("en")
    lost: Counter = Counter()
    docs = []
    for row in rows:
        doc = nlp.make_doc(row["text"])
        spans = []
        for ent in row.get("entities", []):
            if ent["type"] not in keep:
                lost["other_type"] += len(ent["spans"])
                continue
            for s, e in ent["spans"]:
                span = doc.char_span(s, e, label=ent["type"], alignment_mode="contract")
                if span is None or not span.text.strip():
                    lost["misaligned"] += 1
                else:
                    spans.append(span)
        kept = filter_spans(spans)
        lost["overlap"] += len(spans) - len(kept)
        doc.ents = kept
        docs.append(doc)
    random.Random(seed).shuffle(docs)
    n_dev = max(1, int(round(len(docs) * dev_share))) if len(docs) > 1 else 0
    out.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs[n_dev:]).to_disk(out / "train.spacy")
    DocBin(docs=docs[:n_dev] or docs).to_disk(out / "dev.spacy")
    info = {"docs": len(docs), "train": len(docs) - n_dev, "dev": n_dev or len(docs),
            "labels": sorted(keep), "entities": sum(len(d.ents) for d in docs), "lost": dict(lost)}
    (out / "docbin.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return info


def compare(model: Path, data: Sequence[Path], limit: Optional[int], student: Optional[Path], out: Path) -> dict:
    import spacy

    from uniner_spacy.evaluation.loaders import load

    nlp = spacy.load(model)
    known = set(nlp.get_pipe("ner").labels)
    result: Dict[str, object] = {"model": str(model), "labels": sorted(known), "datasets": {}}
    for path in data:
        examples = load(path, limit=limit)
        texts = [ex.text for ex in examples]
        started = time.time()
        docs = list(nlp.pipe(texts))
        seconds = time.time() - started
        tp = fp = fn = 0
        for ex, doc in zip(examples, docs):
            asked = known & set(ex.labels)  # labels both the data set and the pipeline have
            gold = {(e.start, e.end, e.label) for e in ex.entities if e.label in asked}
            pred = {(e.start_char, e.end_char, e.label_) for e in doc.ents if e.label_ in asked}
            tp += len(gold & pred)
            fp += len(pred - gold)
            fn += len(gold - pred)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        result["datasets"][path.stem if path.parent.name == "" else path.parent.name] = {
            "span": {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r,
                     "f1": 2 * p * r / (p + r) if p + r else 0.0},
            "examples": len(examples), "sent_per_s": len(texts) / seconds if seconds else None}
    if student and student.exists():
        metrics = json.loads(student.read_text())
        result["student"] = {name: {"span_f1": (d.get("span") or {}).get("f1"),
                                    "string_f1": (d.get("string") or {}).get("f1"),
                                    "sent_per_s": d.get("sent_per_s") or d.get("sentences_per_second")}
                             for name, d in (metrics.get("datasets") or {}).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return result


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    db = sub.add_parser("docbin", help="annotations → train/dev DocBin files")
    db.add_argument("annotations", type=Path)
    db.add_argument("--out", type=Path, required=True)
    db.add_argument("--labels", default="", help="comma-separated types to keep (default: --top most frequent)")
    db.add_argument("--top", type=int, default=10)
    db.add_argument("--dev-share", type=float, default=0.2)
    db.add_argument("--seed", type=int, default=0)
    cp = sub.add_parser("compare", help="score and time the spaCy pipeline beside the student's metrics")
    cp.add_argument("model", type=Path)
    cp.add_argument("data", type=Path, nargs="+")
    cp.add_argument("--limit", type=int, default=None)
    cp.add_argument("--student", type=Path, help="the student's metrics.json (training.package evaluate)")
    cp.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.command == "docbin":
        labels = [x.strip() for x in args.labels.split(",") if x.strip()] or None
        return to_docbins(args.annotations, args.out, labels, args.top, args.dev_share, args.seed)
    return compare(args.model, args.data, args.limit, args.student, args.out)


if __name__ == "__main__":
    main()
