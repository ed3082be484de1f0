"""Settings of the HF backend against each other, in one process: ratio, decode steps, same answers.

Each setting (a JSON object of `uniner.HF.v1` arguments) gets its own loaded
backend; every round answers the same (sentence, label) queries with each in
turn, alternating, so a noisy machine slows every setting alike. The line per
setting gives the median seconds, the median ratio of the first setting's
seconds to its own, the decode steps, and how many answers (text and token
log-probabilities, to 1e-4) are the same as the first setting's.

    python benchmarks/settings.py --sentences 100 --labels 4 \\
        --settings '[{"draft_tokens": 0}, {"draft_tokens": 4}]' --repeats 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from throughput import LABELS, sentences  # noqa: E402  (same folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=100)
    ap.add_argument("--labels", type=int, default=4)
    ap.add_argument("--settings", type=json.loads, default=[{"draft_tokens": 0}, {}],
                    help="a JSON list of backend settings; the first is the baseline")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = ap.parse_args()
    import torch

    from uniner_spacy.backends.hf import backend as hf
    from uniner_spacy.backends.hf.hardware import speed_flags
    from uniner_spacy.types import Query

    torch.set_num_threads(args.threads)
    queries = [Query(t, label, label) for t in sentences(args.sentences) for label in LABELS[: args.labels]]
    backends = [hf.HFBackend(**{"dtype": args.dtype, **setting}) for setting in args.settings]
    for backend in backends:
        backend(queries[: args.labels])  # loads the model outside the timing
    n = len(backends)
    seconds, answers, steps = [[] for _ in range(n)], [None] * n, [0] * n
    decode, current = hf.greedy_decode, [0]

    def counted(*a, **kw):  # decode steps: calls of the decoder after each decode's first
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
            steps[current[0]] += calls[0] - 1
    hf.greedy_decode = counted
    for _ in range(args.repeats):
        for k, backend in enumerate(backends):
            current[0], steps[k] = k, 0
            start = time.perf_counter()
            answers[k] = backend(queries)
            seconds[k].append(time.perf_counter() - start)
    for k, backend in enumerate(backends):
        same = sum(a.text == b.text and all(abs(x[1] - y[1]) < 1e-4 for x, y in zip(a.token_logprobs, b.token_logprobs))
                   for a, b in zip(answers[0], answers[k]))
        line = json.dumps({
            "setting": args.settings[k], "labels": args.labels, "sentences": args.sentences, "dtype": backend.dtype,
            "cpu_flags": speed_flags(), "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": args.threads, "repeats": args.repeats,
            "seconds_median": round(statistics.median(seconds[k]), 3),
            "ratio_to_first": round(statistics.median(a / b for a, b in zip(seconds[0], seconds[k])), 3),
            "decode_steps": steps[k], "same_answers": same, "answers": len(queries),
            "same_text": sum(a.text == b.text for a, b in zip(answers[0], answers[k])),
        })
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
