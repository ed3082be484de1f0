"""Where a `prefix` run's time goes, and how far it is from the machine's limits.

`Profile` wraps the HF backend's parts for the length of one run (the library
carries no profiling hooks): passage prefill, the question tails (the first
decode step, which runs every question's own words), the decode steps, the
grammar's allowed tokens, the restricted output layer and the stages. The rest
of the wall time is chunking, alignment, spaCy and the decode loop's Python.

Against the limits: every forward's tokens (padding included: it is computed)
times 2 × the decoder's parameters are the matrix FLOPs, set against a large
`linear` in the model's dtype on this machine; a decode step with few rows is
bound by reading the weights, set against one row through a weight matrix too
big for the caches.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Dict, List, Tuple


def matmul_rate(dtype, rows: int = 4096, hidden: int = 576, out: int = 1536, seconds: float = 1.0) -> float:
    """GFLOP/s of one large `linear` (the shape of the student's MLP) in `dtype`."""
    import torch

    a, w = torch.randn(rows, hidden, dtype=dtype), torch.randn(out, hidden, dtype=dtype)
    torch.nn.functional.linear(a, w)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.nn.functional.linear(a, w)
        n += 1
    return 2 * rows * hidden * out * n / (time.perf_counter() - start) / 1e9


def weight_bandwidth(dtype, megabytes: int = 256, seconds: float = 1.0) -> float:
    """GB/s of one row through weights bigger than the caches (a decode step's floor)."""
    import torch

    size = torch.tensor([], dtype=dtype).element_size()
    cols = 4096
    w = torch.randn(megabytes * 2**20 // (size * cols), cols, dtype=dtype)
    x = torch.randn(1, cols, dtype=dtype)
    torch.nn.functional.linear(x, w)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.nn.functional.linear(x, w)
        n += 1
    return w.numel() * size * n / (time.perf_counter() - start) / 1e9


class Profile:
    """Seconds per part of a run, tokens per kind of forward, decode steps by batch rows."""

    def __init__(self):
        self.seconds: Dict[str, float] = {}
        self.tokens: Dict[str, int] = {}
        self.forwards: List[Tuple[str, int]] = []  # (kind, tokens run) of each decoder call
        self._inside = ""
        self._first = False  # the next decoder call is a decode's first: the question tails

    @contextmanager
    def part(self, name: str):
        start = time.perf_counter()
        outer, self._inside = self._inside, self._inside or name
        try:
            yield
        finally:
            self._inside = outer
            if not outer:  # nested parts count once, in the outer one
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    @contextmanager
    def installed(self, backend):
        """Wraps the backend's parts while the block runs."""
        from uniner_spacy.backends.hf import backend as hf_backend
        from uniner_spacy.backends.hf import decoding, grammar
        from uniner_spacy.pipeline.component import UniNER

        decoder = backend.model.get_decoder()
        patched = [(hf_backend.HFBackend, "_prefill_passages"), (grammar.JsonListConstraint, "options"),
                   (decoding, "_restricted_logits"), (UniNER, "run_stages"), (hf_backend, "greedy_decode"),
                   (decoder, "forward")]
        names = {"_prefill_passages": "prefill passages", "options": "grammar",
                 "_restricted_logits": "output layer", "run_stages": "stages"}
        saved = [(owner, attr, owner.__dict__[attr]) for owner, attr in patched if attr in owner.__dict__]
        forward = decoder.forward

        def timed(name, fn):
            def inner(*args, **kwargs):
                with self.part(name):
                    return fn(*args, **kwargs)
            return inner

        def decode(*args, **kwargs):
            self._first = True
            return decode_fn(*args, **kwargs)

        def decoder_forward(*args, **kwargs):
            ids = kwargs["input_ids"]
            rows, width = ids.shape
            kind = "prefill passages" if self._inside == "prefill passages" else (
                "prefill questions" if self._first else "decode steps")
            self._first = False
            self.tokens[kind] = self.tokens.get(kind, 0) + rows * width
            self.forwards.append((kind, rows * width))
            with self.part(kind):
                return forward(*args, **kwargs)

        for owner, attr in patched[:-2]:
            setattr(owner, attr, timed(names[attr], getattr(owner, attr)))
        decode_fn = hf_backend.greedy_decode
        hf_backend.greedy_decode = decode
        decoder.forward = decoder_forward
        try:
            yield self
        finally:
            for owner, attr, fn in saved:
                setattr(owner, attr, fn)
            del decoder.forward  # back to the class's method

    def report(self, backend, wall: float, sentences: int) -> dict:
        """The profile as one JSON-ready dict.

        Each forward's floor is the larger of its matrix FLOPs at the matmul
        rate and one read of the weights at the measured bandwidth: what the
        machine could not beat for that forward.
        """
        import torch

        model = backend.model
        dtype = next(model.parameters()).dtype
        params = sum(p.numel() for p in model.get_decoder().layers.parameters())
        rate = matmul_rate(dtype) * 1e9
        bandwidth = weight_bandwidth(dtype) * 1e9
        weight_bytes = params * torch.tensor([], dtype=dtype).element_size()
        floor: Dict[str, float] = {}
        for kind, tokens in self.forwards:
            floor[kind] = floor.get(kind, 0.0) + max(2 * params * tokens / rate, weight_bytes / bandwidth)
        seconds = {k: round(v, 3) for k, v in sorted(self.seconds.items(), key=lambda kv: -kv[1])}
        seconds["other (chunking, alignment, spaCy, decode loop)"] = round(wall - sum(self.seconds.values()), 3)
        steps = [t for kind, t in self.forwards if kind == "decode steps"]
        flops = 2 * params * sum(self.tokens.values())
        return {
            "profile_seconds": seconds,
            "floor_seconds": {k: round(v, 3) for k, v in floor.items()},
            "tokens": self.tokens,
            "decode_steps": len(steps), "decode_tokens_per_step": round(sum(steps) / max(1, len(steps)), 1),
            "matrix_gflop_per_sentence": round(flops / sentences / 1e9, 2),
            "matmul_gflops": round(rate / 1e9, 1), "weight_read_gbps": round(bandwidth / 1e9, 1),
            "weight_gb": round(weight_bytes / 1e9, 3),
            # the model's forwards at their floors, nothing else: how fast this work could go here
            "sentences_per_s_at_floor": round(sentences / sum(floor.values()), 1),
        }
