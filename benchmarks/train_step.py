"""Seconds per training step with logits on the answer tokens only, against logits everywhere.

Prints one JSON line per (loss, repetition), then one summary line: a LoRA
step (forward, loss, backward) of `training.train` on the first batches of a
mixture, with `answer_loss` (the output layer on the answer tokens only) and
with the model's own loss (the output layer on every position), alternated in
one process so that both see the same machine.

    python benchmarks/train_step.py --data .train/gemma-mixture1.jsonl --base embedded-gemma --threads 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a training.mixture JSONL")
    ap.add_argument("--base", default="embedded-gemma")
    ap.add_argument("--layout", default="type-last")
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    args = ap.parse_args()

    import torch
    from transformers import AutoConfig, AutoTokenizer

    from training import train
    from training.conversations import read_jsonl
    from training.features import tokenize_conversations
    from uniner_spacy.backends.hf.hardware import speed_flags
    from uniner_spacy.weights import BOS_MODEL_TYPES

    torch.set_num_threads(args.threads)
    base = train.resolve_base(args.base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    bos = AutoConfig.from_pretrained(base).model_type in BOS_MODEL_TYPES
    features, _ = tokenize_conversations(read_jsonl(args.data)[:2000], tokenizer, train.base_eos(args.base),
                                         layout=args.layout, bos=bos)
    sampler = train.TokenBudgetBatches([len(f) for f in features], args.batch_tokens, args.max_batch_size, seed=0)
    collate = train.make_collator(tokenizer.pad_token_id)
    opts = train.parse_args(["--data", args.data, "--base", args.base, "--lora-r", "8", "--lora-alpha", "16"])
    model = train.load_model(opts, base)
    model.train()
    bf16 = train.use_bf16(args.precision, gpu=False)

    def full_loss(m, inputs):
        return m(**inputs).loss  # the model's own: logits at every position

    losses = {"answer_only": lambda m, x: train.answer_loss(m, x)[0], "every_position": full_loss}
    batches = [collate([{"input_ids": features[i].input_ids, "labels": features[i].labels} for i in b])
               for b in list(sampler)[: args.repeats]]
    times: dict = {name: [] for name in losses}
    for rep, inputs in enumerate(batches):
        for name, loss_fn in losses.items():
            model.zero_grad()
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model, inputs)
            loss.backward()
            seconds = time.perf_counter() - start
            times[name].append(seconds)
            print(json.dumps({"loss": name, "repeat": rep, "seconds": round(seconds, 3),
                              "rows": int(inputs["input_ids"].shape[0]), "tokens": int(inputs["attention_mask"].sum()),
                              "answer_tokens": int((inputs["labels"] != -100).sum()), "value": round(loss.item(), 4)}),
                  flush=True)
    a, f = statistics.median(times["answer_only"]), statistics.median(times["every_position"])
    print(json.dumps({"summary": True, "base": args.base, "threads": args.threads, "bf16": bf16,
                      "median_answer_only_s": round(a, 3), "median_every_position_s": round(f, 3),
                      "speedup": round(f / a, 2), "cpu_flags": speed_flags()}), flush=True)


if __name__ == "__main__":
    main()
