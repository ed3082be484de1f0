"""Corpus → de-duplicated, sampled passages of at most N student tokens.

    python -m training.corpus INPUT [INPUT ...] --out corpus/passages.jsonl \
        --n 50000 --max-tokens 256 --seed 0

INPUT is a text file (`.txt`, one document per blank-line-separated block), a
JSONL file with a text field (`--text-field`), a folder (every .txt/.jsonl in
it) or a Hugging Face `datasets` dump saved with `save_to_disk` (read only when
`datasets` is installed; skipped with a message otherwise). Documents are cut on
sentence boundaries (spaCy's rule-based sentencizer) into passages of at most
`--max-tokens` tokens of the student's tokenizer (`uniner_spacy.chunking`, no
overlap), normalised duplicates are dropped, and `--n` passages are sampled
with `--seed`. Writes one `{"id", "text", "source", "n_tokens"}` a line and
`<out stem>.stats.json`.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from uniner_spacy.distill.teacher import passage_id
from uniner_spacy.io import jsonl_rows
from uniner_spacy.pipeline.chunking import chunk_text


def _is_hf_dump(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()
                              or (path / "dataset_dict.json").exists())


def read_documents(path: Path, text_field: str = "text", log=print) -> Iterator[Tuple[str, str]]:
    """(source, document text) from one input path."""
    if _is_hf_dump(path):
        try:
            import datasets  # noqa: F401
        except ImportError:
            log(f"skipping {path}: a datasets dump, but the `datasets` package is not installed")
            return
        from datasets import DatasetDict, load_from_disk

        data = load_from_disk(str(path))
        splits = data.values() if isinstance(data, DatasetDict) else [data]
        for split in splits:
            for row in split:
                text = row.get(text_field)
                if isinstance(text, str) and text.strip():
                    yield path.name, text
        return
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.suffix in (".txt", ".jsonl") and child.is_file():
                yield from read_documents(child, text_field, log)
        return
    if path.suffix == ".jsonl":
        for _, row in jsonl_rows(path, on_bad=log):
            text = row.get(text_field) if isinstance(row, dict) else None
            if isinstance(text, str) and text.strip():
                yield str(row.get("source") or path.stem), text
        return
    raw = path.read_text(encoding="utf-8", errors="replace")
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        if block.strip():
            yield path.stem, block.strip()


@lru_cache(maxsize=4)
def student_offsets(tokenizer_name: str):
    """A function text → model-token character offsets, from the student's tokenizer."""
    from transformers import AutoTokenizer

    if tokenizer_name in ("embedded", "embedded-base"):
        from uniner_spacy.weights import convert_gguf, embedded_gguf

        tokenizer_name = str(convert_gguf(embedded_gguf()))
    tok = AutoTokenizer.from_pretrained(tokenizer_name)

    def offsets(text: str) -> List[Tuple[int, int]]:
        return [tuple(o) for o in tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]

    return offsets


def split_passages(text: str, offsets, nlp, max_tokens: int) -> List[Tuple[str, int]]:
    from uniner_spacy.pipeline.chunking import doc_units

    units = doc_units(nlp(text))
    return [(p.text.strip(), p.n_tokens) for p in chunk_text(text, offsets(text), units, max_tokens, 0)]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def build(inputs: Sequence[Path], n: int, max_tokens: int, seed: int, tokenizer: str,
          text_field: str = "text", min_chars: int = 20, log=print) -> Tuple[List[dict], dict]:
    import spacy

    nlp = spacy.blank("en")
    offsets = student_offsets(tokenizer)
    seen = set()
    passages: List[dict] = []
    stats = {"documents": 0, "passages_split": 0, "duplicates": 0, "too_short": 0}
    for path in inputs:
        for source, doc in read_documents(Path(path), text_field, log):
            stats["documents"] += 1
            for text, n_tokens in split_passages(doc, offsets, nlp, max_tokens):
                stats["passages_split"] += 1
                if len(text) < min_chars:
                    stats["too_short"] += 1
                    continue
                key = _norm(text)
                if key in seen:
                    stats["duplicates"] += 1
                    continue
                seen.add(key)
                passages.append({"id": passage_id(text), "text": text, "source": source, "n_tokens": n_tokens})
    rng = random.Random(seed)
    if 0 < n < len(passages):
        passages = rng.sample(passages, n)
    stats.update({"unique": len(seen), "sampled": len(passages), "n": n, "seed": seed, "max_tokens": max_tokens,
                  "max_passage_tokens": max((p["n_tokens"] for p in passages), default=0)})
    return passages, stats


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=0, help="passages to sample (0: all)")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokenizer", default="embedded", help="'embedded' (the SmolLM2 student) or a HF tokenizer")
    p.add_argument("--text-field", default="text")
    p.add_argument("--min-chars", type=int, default=20)
    args = p.parse_args(argv)
    passages, stats = build(args.inputs, args.n, args.max_tokens, args.seed, args.tokenizer,
                            args.text_field, args.min_chars, log=lambda m: print(m, file=sys.stderr))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in passages:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    args.out.with_suffix(".stats.json").write_text(json.dumps(stats, indent=1))
    print(json.dumps(stats))
    return stats


if __name__ == "__main__":
    main()
