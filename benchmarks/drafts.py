"""Speculative decoding from the passage (`draft_tokens`), against one token a step, in one process.

One loaded backend answers the same (sentence, label) queries with each
`draft_tokens` setting in turn, `--repeats` rounds, alternating, so a noisy
machine slows every setting alike; the line per setting gives the median
seconds, its ratio to the first setting, the decode steps, and how many
answers (text and token log-probabilities, to 1e-4 in float32) are the same
as the first setting's.

    python benchmarks/drafts.py --sentences 100 --labels 4 --drafts 0,2,4,8 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from throughput import LABELS, sentences  # noqa: E402  (same folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=100)
    ap.add_argument("--labels", type=int, default=4)
    ap.add_argument("--drafts", default="0,4", help="draft_tokens settings; the first is the baseline")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from uniner_spacy.backends.hf import backend as hf
    from uniner_spacy.backends.hf.hardware import speed_flags
    from uniner_spacy.types import Query

    torch.set_num_threads(args.threads)
    backend = hf.HFBackend(dtype=args.dtype)
    queries = [Query(t, label, label) for t in sentences(args.sentences) for label in LABELS[: args.labels]]
    backend(queries[: args.labels])  # loads the model outside the timing
    settings = [int(x) for x in args.drafts.split(",")]
    seconds = {k: [] for k in settings}
    answers, steps = {}, {}
    decode = hf.greedy_decode

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
            steps[backend.draft_tokens] = steps.get(backend.draft_tokens, 0) + calls[0] - 1
    hf.greedy_decode = counted
    for _ in range(args.repeats):
        for k in settings:
            backend.draft_tokens = k
            steps[k] = 0
            start = time.perf_counter()
            answers[k] = backend(queries)
            seconds[k].append(time.perf_counter() - start)
    base = settings[0]
    for k in settings:
        same = sum(a.text == b.text and all(abs(x[1] - y[1]) < 1e-4 for x, y in zip(a.token_logprobs, b.token_logprobs))
                   for a, b in zip(answers[base], answers[k]))
        print(json.dumps({
            "draft_tokens": k, "labels": args.labels, "sentences": args.sentences, "dtype": backend.dtype,
            "cpu_flags": speed_flags(), "threads": args.threads, "repeats": args.repeats,
            "seconds_median": round(statistics.median(seconds[k]), 3),
            "ratio_to_first": round(statistics.median(a / b for a, b in zip(seconds[base], seconds[k])), 3),
            "decode_steps": steps[k], "same_answers": same, "answers": len(queries),
            "same_text": sum(a.text == b.text for a, b in zip(answers[base], answers[k])),
        }), flush=True)


if __name__ == "__main__":
    main()
