"""Sentences per second of the `uniner` pipe on CoNLL-2003 dev sentences.

Prints one JSON line per (mode, labels): `naive` sends one query per
`generate` call (how spacy-llm and the UniNER demo run a HF model),
`batched` sends all (chunk, type) queries of an `nlp.pipe` batch together,
`prefix` also encodes each passage once for all its questions (prefix sharing),
`llamacpp` asks llama.cpp (xllamacpp) serving the GGUF with the student
adapter through the OpenAI backend (see `llama_cpp`).

    python benchmarks/throughput.py --sentences 200 --labels 4 --modes naive,batched,prefix

One query per call costs the same per query whatever the sentence, so
`--naive-every K` times `naive` on every K-th of the sentences (an evenly
spread subset; the line says how many) to keep the run short. `--plot` draws
sentences/s against the number of labels (needs matplotlib).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Optional

from profiling import Profile  # noqa: E402  (same folder)

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("UNINER_DATA", REPO.parent / "shared" / "data"))
LABELS = ["person", "organization", "location", "miscellaneous", "date", "event", "product",
          "nationality", "time", "money", "quantity", "work of art", "law", "language", "percent",
          "facility", "disease", "chemical", "gene", "species", "algorithm", "field", "task",
          "metric", "university", "conference", "award", "band", "album", "song", "genre", "politician"]

MODES = {
    "naive": {"batch_size": 1, "prefix_sharing": False},
    # the same batches as the default path, without prefix sharing
    "batched": {"batch_size": 512, "prefix_sharing": False},
    "prefix": {},  # the component's default: prefix sharing, 512 queries a batch on the CPU
    # dynamic int8 linear layers: faster, but measured to cost F1 (docs/speed.md), so not the default
    "prefix-int8": {"dtype": "int8"},
}


def sentences(n: int, skip: int = 0):
    path = DATA / "supervised" / "conll2003" / "dev.json"
    if not path.exists():
        sys.exit(f"CoNLL-2003 dev not found at {path}; set UNINER_DATA")
    rows = json.loads(path.read_text())
    return [r["sentence"] for r in rows if len(r["sentence"].split()) >= 5][skip : skip + n]


def run(mode: str, n_labels: int, texts, model: str, dtype: str, threads: int, profile: bool = False,
        overrides: Optional[dict] = None, warmup: int = 8) -> dict:
    import spacy

    from uniner_spacy.backends.hf.grammar import GRAMMAR_VERSION
    from uniner_spacy.backends.hf.hardware import speed_flags

    nlp = spacy.blank("en")
    server = None
    if mode == "llamacpp":
        server, backend = llama_cpp(threads)
    else:
        backend = {"@misc": "uniner.HF.v1", "model": model, "dtype": dtype, **MODES[mode], **(overrides or {})}
    nlp.add_pipe("uniner", config={"labels": LABELS[:n_labels], "backend": backend})
    # loads the model, and the stages' encoder, outside the timing: sentences after the measured ones
    # (`--warmup` as many as are measured: the process's heap has grown, as in a long run)
    list(nlp.pipe(sentences(warmup, skip=len(texts)), batch_size=64))
    pipe = nlp.get_pipe("uniner")
    timer = Profile() if profile else None
    with timer.installed(pipe.backend) if timer else contextlib.nullcontext():
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        docs = list(nlp.pipe(texts, batch_size=64))
        elapsed = time.perf_counter() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    del server
    stats = [d._.uniner_stats for d in docs]
    # the dtype `auto` chose on this machine, and the flags it chose by
    dtype = getattr(pipe.backend, "dtype", "q4_1")
    extra = timer.report(pipe.backend, elapsed, len(texts)) if timer else {}
    return {
        "mode": mode, "labels": n_labels, "backend": overrides or {}, "sentences": len(texts), "dtype": dtype,
        "cpu_flags": speed_flags(),
        "grammar": GRAMMAR_VERSION if mode != "llamacpp" else None,
        "sentences_per_s": round(len(texts) / elapsed, 3), "seconds": round(elapsed, 1),
        "queries": sum(s["queries"] for s in stats),
        "parse_failures": sum(s["parse_failures"] for s in stats),
        "entities": sum(len(d.ents) for d in docs),
        # pages the process touched for the first time: see hardware.keep_freed_memory
        "page_faults": faults, "memory_kept": getattr(pipe.backend, "memory_kept", None),
        "warmup_sentences": warmup, "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **extra,
    }


def llama_cpp(threads: int, slots: int = 4):
    """llama.cpp (xllamacpp, in-process) serving the shipped GGUF with the student adapter,
    asked through `uniner.OpenAI.v1`.

    The base stays Q4_1 and the adapter (`models.adapter_gguf`) is applied at
    run time, unconstrained (llama.cpp's grammars cannot say "a passage
    substring"). llama.cpp reuses a slot's cached prompt prefix, so a
    passage's later questions cost only their own tokens.
    """
    import xllamacpp

    from uniner_spacy.questions.prompts import adapter_layout
    from uniner_spacy.weights import ADAPTER_DIR, adapter_gguf, embedded_gguf

    params = xllamacpp.CommonParams()
    params.model.path = str(embedded_gguf())
    lora = xllamacpp.CommonAdapterLoraInfo()
    lora.path, lora.scale = str(adapter_gguf()), 1.0
    params.lora_adapters = [lora]
    params.n_ctx = 1024 * slots
    params.n_parallel = slots
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(params)
    url = server.listening_address.rstrip("/") + "/v1"
    backend = {"@misc": "uniner.OpenAI.v1", "model": "smollm2", "base_url": url, "eos": "<|im_end|>",
               "concurrency": slots, "timeout": 600, "layout": adapter_layout(ADAPTER_DIR)}
    return server, backend


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--labels", default="4", help="comma-separated label counts, e.g. 1,4,13,32")
    ap.add_argument("--modes", default="naive,batched")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=8, help="sentences run before the timing (other ones)")
    ap.add_argument("--naive-every", type=int, default=1, help="time `naive` on every K-th sentence only")
    ap.add_argument("--backend", type=json.loads, default={},
                    help='JSON settings of uniner.HF.v1 on top of the mode\'s, e.g. \'{"draft_tokens": 0}\'')
    ap.add_argument("--profile", action="store_true",
                    help="prefix mode: seconds per part of the run, FLOPs per sentence against this machine's "
                         "matmul rate and weight-read bandwidth (profiling.py)")
    ap.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    ap.add_argument("--plot", type=Path,
                    help="write sentences/s against labels, per mode, as a PNG (all of --out's lines)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    texts = sentences(args.sentences)
    rows = []
    for n in [int(x) for x in args.labels.split(",")]:
        for mode in args.modes.split(","):
            subset = texts[:: args.naive_every] if mode == "naive" else texts
            row = {**run(mode, n, subset, args.model, args.dtype, args.threads, overrides=args.backend,
                         profile=args.profile and mode != "llamacpp", warmup=args.warmup), "threads": args.threads}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    if args.plot:  # every line of --out (earlier runs too), else this run's
        if args.out and args.out.exists():
            from uniner_spacy.io import jsonl_rows

            rows = [row for _, row in jsonl_rows(args.out)]
        plot(rows, args.plot)


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for mode in dict.fromkeys(r["mode"] for r in rows):
        pts = sorted((r["labels"], r["sentences_per_s"]) for r in rows if r["mode"] == mode)
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=mode)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("labels (questions per sentence)")
    ax.set_ylabel("sentences / s")
    ax.set_title(f"uniner on CoNLL-2003 dev, embedded student, {rows[0]['threads']} CPU threads", fontsize="small")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
