"""Raw text for `uniner-spacy distill`: a seeded sample of the texts of a data file, labels dropped.

    python -m training.raw_text ../shared/data/supervised/conll2003/train.json --n 2000 --out corpus.jsonl

Any format the evaluation loaders read (IE_INSTRUCTIONS JSON, BIO, ...) or text lines / JSONL with a
`text` field. Only the text is written, so a teacher, never the gold labels, annotates it.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import List, Optional, Sequence


def texts_of(path: Path) -> List[str]:
    if path.suffix in (".txt", ".jsonl", ".ndjson") or path.is_dir():
        from uniner_spacy.io import read_texts

        return [text for text, _ in read_texts(path)]
    from uniner_spacy.evaluation.loaders import load

    return [eg.text for eg in load(path)]


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=0, help="sample size (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    texts = [t for t in dict.fromkeys(texts_of(args.data)) if t.strip()]  # unique, in order
    random.Random(args.seed).shuffle(texts)
    if args.n:
        texts = texts[: args.n]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf8") as fh:
        for text in texts:
            fh.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    info = {"data": str(args.data), "texts": len(texts), "seed": args.seed, "out": str(args.out)}
    print(json.dumps(info))
    return info


if __name__ == "__main__":
    main()
