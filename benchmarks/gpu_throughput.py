"""UniNER-7B-sized throughput on a GPU: naive, batched and prefix-shared.

Builds a randomly initialised LLaMA with UniNER-7B's exact shape in bf16 (no
download: the cost of a forward pass does not depend on the weights) and
measures sentences/s for 4 and 13 types over CoNLL-2003 dev sentences, with
every answer forced to the same length so the modes do equal work. Also
reports the memory bandwidth the decode steps achieve against the card's
peak. Prints JSON lines; exits 0 with a `skipped` line when there is no GPU.

    python benchmarks/gpu_throughput.py --sentences 64 --new-tokens 16
"""
from __future__ import annotations

import argparse
import json
import time

from throughput import LABELS, sentences  # noqa: E402  (same folder)

PEAK_GBPS = {"H100 80GB HBM3": 3350, "H100 PCIe": 2000, "H200": 4800, "A100-SXM4-80GB": 2039,
             "A100-SXM4-40GB": 1555, "A100-PCIE-40GB": 1555, "L4": 300, "A10G": 600}


def build_model(vocab_size: int, device: str = "cuda", layers: int = 32, hidden: int = 4096):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(  # UniNER-7B = LLaMA-7B
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 11008 // 4096,
        num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=32,
        max_position_embeddings=2048, rms_norm_eps=1e-6, torch_dtype="bfloat16",
    )
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--labels", default="4,13")
    ap.add_argument("--new-tokens", type=int, default=16, help="every answer is forced to this length")
    ap.add_argument("--naive-sentences", type=int, default=8, help="naive mode is slow: fewer sentences")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--tokenizer", help="tokenizer folder (default: the embedded model's, converted from its GGUF)")
    ap.add_argument("--smoke", action="store_true",
                    help="a 2-layer model on the CPU: checks the script, measures nothing")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.smoke:
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    from transformers import AutoTokenizer

    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.types import Query
    from uniner_spacy.weights import convert_gguf, embedded_gguf

    device = "cpu" if args.smoke else "cuda"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    card = "smoke test (CPU)" if args.smoke else torch.cuda.get_device_name(0)
    tok = AutoTokenizer.from_pretrained(args.tokenizer or str(convert_gguf(embedded_gguf())))
    start = time.perf_counter()
    model = build_model(len(tok), device, *((2, 256) if args.smoke else ()))
    sync()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    print(json.dumps({"card": card, "build_s": round(time.perf_counter() - start, 1),
                      "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 2)}), flush=True)
    # random weights never emit EOS on purpose: force equal answer lengths in every mode
    model.generation_config.min_new_tokens = args.new_tokens
    texts = sentences(args.sentences)
    modes = {"naive": dict(batch_size=1, prefix_sharing=False),
             "batched": dict(batch_size=args.batch_size, prefix_sharing=False),
             "prefix": dict(batch_size=args.batch_size, prefix_sharing=True)}
    for n in [int(x) for x in args.labels.split(",")]:
        for mode, kw in modes.items():
            use = texts[: args.naive_sentences] if mode == "naive" else texts
            backend = HFBackend.from_objects(model, tok, max_new_tokens=args.new_tokens,
                                             stop_at_list_end=False, constrained=False, **kw)
            queries = [Query(t, label, label) for t in use for label in LABELS[:n]]
            backend(queries[: min(4, len(queries))])  # warm-up
            sync()
            t0 = time.perf_counter()
            backend(queries)
            sync()
            elapsed = time.perf_counter() - t0
            calls = -(-len(queries) // kw["batch_size"])
            steps = calls * args.new_tokens
            gbps = weight_bytes * steps / elapsed / 1e9  # lower bound: weights read once per decode step
            peak = next((v for k, v in PEAK_GBPS.items() if k in card), None)
            print(json.dumps({"mode": mode, "labels": n, "sentences": len(use), "card": card,
                              "sentences_per_s": round(len(use) / elapsed, 3), "seconds": round(elapsed, 2),
                              "achieved_gb_s": round(gbps, 1), "peak_gb_s": peak,
                              "bandwidth_share": round(gbps / peak, 3) if peak else None}), flush=True)


if __name__ == "__main__":
    main()
