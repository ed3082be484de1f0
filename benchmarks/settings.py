"""Settings of the HF backend against each other: ratio, decode steps, same answers.

Each setting (a JSON object of `uniner.HF.v1` arguments) gets its own loaded
backend; every round answers the same (sentence, label) queries with each in
turn, alternating, so a noisy machine slows every setting alike. The line per
setting gives the median seconds, the median ratio of the first setting's
seconds to its own, the decode steps, and how many answers (text and token
log-probabilities, to 1e-4) are the same as the first setting's.

    python benchmarks/settings.py --sentences 100 --labels 4 \\
        --settings '[{"draft_tokens": 0}, {"draft_tokens": 4}]' --repeats 3

A setting that acts on the whole process (`keep_memory`, how malloc treats
freed memory) cannot be compared inside one: `--processes` runs each setting
of each round in a fresh process, timing the second of two passes over the
queries (a long run's steady state; the first also grows the heap).
`--pipeline` times `nlp.pipe` over the sentences instead (the `uniner` pipe
with its default stages, 64 docs a batch; the first pass runs as many other
sentences) and compares the docs' entities.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from throughput import LABELS, sentences  # noqa: E402  (same folder)

PROCESS_WIDE = ("keep_memory", "threads")


def timed(backend, queries, passes: int = 1, nlp=None, warmup=()):
    """(seconds of the last pass, its answers, its decode steps: decoder calls after each decode's first).

    With `nlp`, `queries` are texts run through it (after one pass over `warmup`), and the
    answers are each doc's entities."""
    from uniner_spacy.backends.hf import backend as hf

    decode, steps = hf.greedy_decode, [0]

    def counted(*a, **kw):
        decoder = a[0].get_decoder()
        calls = [0]
        forward = decoder.forward

        def inner(*x, **y):
            calls[0] += 1
            return forward(*x, **y)
        decoder.forward = inner
        try:
            return decode(*a, **kw)
        finally:
            del decoder.forward
            steps[0] += calls[0] - 1
    hf.greedy_decode = counted
    try:
        if nlp is not None:
            list(nlp.pipe(warmup, batch_size=64))
            steps[0] = 0
            start = time.perf_counter()
            docs = list(nlp.pipe(queries, batch_size=64))
            seconds = time.perf_counter() - start
            return seconds, [[repr([(e.start_char, e.end_char, e.label_) for e in d.ents]), []] for d in docs], steps[0]
        for _ in range(passes):
            steps[0] = 0
            start = time.perf_counter()
            got = backend(queries)
            seconds = time.perf_counter() - start
            answers = [[a.text, [lp for _, lp in a.token_logprobs]] for a in got]
    finally:
        hf.greedy_decode = decode
    return seconds, answers, steps[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=100)
    ap.add_argument("--labels", type=int, default=4)
    ap.add_argument("--settings", type=json.loads, default=[{"draft_tokens": 0}, {}],
                    help="a JSON list of backend settings; the first is the baseline")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--processes", action="store_true", help="each setting of each round in a fresh process")
    ap.add_argument("--pipeline", action="store_true", help="time nlp.pipe with the uniner pipe (needs --processes)")
    ap.add_argument("--worker", type=json.loads, help=argparse.SUPPRESS)  # one setting, in this process
    ap.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = ap.parse_args()
    wide = sorted({k for setting in args.settings for k in setting if k in PROCESS_WIDE})
    if wide and not args.processes:
        sys.exit(f"{', '.join(wide)} act on the whole process: compare them with --processes")
    if args.pipeline and not args.processes and args.worker is None:
        sys.exit("--pipeline runs with --processes")
    import torch

    from uniner_spacy.backends.hf import backend as hf
    from uniner_spacy.backends.hf.hardware import speed_flags
    from uniner_spacy.types import Query

    torch.set_num_threads(args.threads)
    queries = [Query(t, label, label) for t in sentences(args.sentences) for label in LABELS[: args.labels]]
    if args.worker is not None:
        nlp = None
        if args.pipeline:
            import spacy

            nlp = spacy.blank("en")
            nlp.add_pipe("uniner", config={"labels": LABELS[: args.labels], "backend": {
                "@misc": "uniner.HF.v1", "dtype": args.dtype, **args.worker}})
            backend = nlp.get_pipe("uniner").backend
            seconds, answers, steps = timed(backend, sentences(args.sentences), nlp=nlp,
                                            warmup=sentences(args.sentences, skip=args.sentences))
        else:
            backend = hf.HFBackend(**{"dtype": args.dtype, **args.worker})
            backend(queries[: args.labels])  # loads the model outside the timing
            seconds, answers, steps = timed(backend, queries, passes=2)
        print(json.dumps({"seconds": seconds, "steps": steps, "dtype": backend.dtype,
                          "memory_kept": backend.memory_kept, "answers": answers}))
        return
    n = len(args.settings)
    seconds, answers, steps = [[] for _ in range(n)], [None] * n, [0] * n
    dtypes, kept = [args.dtype] * n, [None] * n
    backends = []
    if not args.processes:
        backends = [hf.HFBackend(**{"dtype": args.dtype, **setting}) for setting in args.settings]
        for backend in backends:
            backend(queries[: args.labels])  # loads the model outside the timing
    for _ in range(args.repeats):
        for k, setting in enumerate(args.settings):
            if backends:
                s, answers[k], steps[k] = timed(backends[k], queries)
                dtypes[k], kept[k] = backends[k].dtype, backends[k].memory_kept
            else:
                run = subprocess.run(
                    [sys.executable, __file__, "--worker", json.dumps(setting), "--sentences", str(args.sentences),
                     "--labels", str(args.labels), "--dtype", args.dtype, "--threads", str(args.threads)]
                    + (["--pipeline"] if args.pipeline else []),
                    capture_output=True, text=True)
                if run.returncode:
                    sys.exit(f"the run of {json.dumps(setting)} failed:\n{run.stderr[-3000:]}")
                line = json.loads(run.stdout.strip().splitlines()[-1])
                s, answers[k], steps[k] = line["seconds"], line["answers"], line["steps"]
                dtypes[k], kept[k] = line["dtype"], line["memory_kept"]
            seconds[k].append(s)
    for k, setting in enumerate(args.settings):
        same = sum(a[0] == b[0] and all(abs(x - y) < 1e-4 for x, y in zip(a[1], b[1]))
                   for a, b in zip(answers[0], answers[k]))
        line = json.dumps({
            "setting": setting, "labels": args.labels, "sentences": args.sentences, "dtype": dtypes[k],
            "memory_kept": kept[k], "processes": args.processes, "pipeline": args.pipeline,
            "cpu_flags": speed_flags(), "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": args.threads, "repeats": args.repeats,
            "seconds": [round(x, 3) for x in seconds[k]], "seconds_median": round(statistics.median(seconds[k]), 3),
            "ratio_to_first": round(statistics.median(a / b for a, b in zip(seconds[0], seconds[k])), 3),
            "decode_steps": steps[k], "same_answers": same, "answers": len(answers[0]),
            "same_text": sum(a[0] == b[0] for a, b in zip(answers[0], answers[k])),
        })
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
