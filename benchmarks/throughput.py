"""Sentences per second of the `uniner` pipe on CoNLL-2003 dev sentences.

Prints one JSON line per (mode, labels): `naive` sends one query per
`generate` call (how spacy-llm and the UniNER demo run a HF model),
`batched` sends all (chunk, type) queries of an `nlp.pipe` batch together,
`prefix` also encodes each passage once for all its questions (prefix sharing).

    python benchmarks/throughput.py --sentences 200 --labels 4 --modes naive,batched
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import spacy

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("UNINER_DATA", REPO.parent / "shared" / "data"))
LABELS = ["person", "organization", "location", "miscellaneous", "date", "event", "product",
          "nationality", "time", "money", "quantity", "work of art", "law", "language", "percent",
          "facility", "disease", "chemical", "gene", "species", "algorithm", "field", "task",
          "metric", "university", "conference", "award", "band", "album", "song", "genre", "politician"]

MODES = {
    "naive": {"batch_size": 1},
    "batched": {"batch_size": 64},
    "prefix": {"batch_size": 64, "prefix_sharing": True},
}


def sentences(n: int):
    path = DATA / "supervised" / "conll2003" / "dev.json"
    if not path.exists():
        sys.exit(f"CoNLL-2003 dev not found at {path}; set UNINER_DATA")
    rows = json.loads(path.read_text())
    return [r["sentence"] for r in rows if len(r["sentence"].split()) >= 5][:n]


def run(mode: str, n_labels: int, texts, model: str, dtype: str) -> dict:
    nlp = spacy.blank("en")
    backend = {"@misc": "uniner.HF.v1", "model": model, "dtype": dtype, **MODES[mode]}
    nlp.add_pipe("uniner", config={"labels": LABELS[:n_labels], "backend": backend})
    nlp("Warm-up sentence about Paris.")  # loads the model outside the timing
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=64))
    elapsed = time.perf_counter() - start
    stats = [d._.uniner_stats for d in docs]
    return {
        "mode": mode, "labels": n_labels, "sentences": len(texts), "dtype": dtype,
        "sentences_per_s": round(len(texts) / elapsed, 3), "seconds": round(elapsed, 1),
        "queries": sum(s["queries"] for s in stats),
        "parse_failures": sum(s["parse_failures"] for s in stats),
        "entities": sum(len(d.ents) for d in docs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--labels", default="4", help="comma-separated label counts, e.g. 1,4,13,32")
    ap.add_argument("--modes", default="naive,batched")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    texts = sentences(args.sentences)
    for n in [int(x) for x in args.labels.split(",")]:
        for mode in args.modes.split(","):
            print(json.dumps(run(mode, n, texts, args.model, args.dtype)), flush=True)


if __name__ == "__main__":
    main()
