"""F1 of a pipeline (default: the embedded student) on the public benchmarks.

Zero-shot dev sets (CrossNER dev splits, MIT train) and the supervised test
sets, both protocols. Prints one JSON line per data set and a last line with
the means; writes the results JSON and a Markdown table.

    python benchmarks/quality.py --limit 100 --out benchmarks/results
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("UNINER_DATA", REPO.parent / "shared" / "data"))

ZERO_SHOT = [f"zeroshot_dev/crossner_{d}/dev.ie.json" for d in ("ai", "literature", "music", "politics", "science")] + [
    "zeroshot_dev/mit_movie/train.ie.json", "zeroshot_dev/mit_restaurant/train.ie.json"]
SUPERVISED = ["supervised/conll2003/test.json"] + [
    f"supervised/{d}/test.tsv" for d in ("anatem", "bc2gm", "bc5cdr", "ncbi")]
SUITES = {"zeroshot": ZERO_SHOT, "supervised": SUPERVISED}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--suites", default="zeroshot,supervised")
    ap.add_argument("--limit", type=int, default=100, help="first N sentences of each file")
    ap.add_argument("--zeroshot-limit", type=int, default=None, help="a different N for the zero-shot suite")
    ap.add_argument("--config", type=Path, default=None, help="spaCy config or pipeline; default embedded")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="",
                    help="answer cache (uniner.Cached.v1) for the default pipeline, e.g. the ablation's")
    ap.add_argument("--backend", default="",
                    help='JSON settings over the default backend, e.g. \'{"constrained": false}\'')
    ap.add_argument("--component", default="",
                    help='JSON settings over the component\'s, e.g. \'{"drop_forced": true}\'')
    ap.add_argument("--wording", default="",
                    help="ask every label written another way (labels.WORDING_KINDS: separators, spelling, number, "
                         "capitals); the entities keep the label, so F1 says how much the wording matters")
    ap.add_argument("--llamacpp", action="store_true",
                    help="ask the student through llama.cpp (xllamacpp, GGUF + adapter)")
    args = ap.parse_args()
    import torch
    from report import plot_results, render_table

    from uniner_spacy.evaluation.labels import reworded
    from uniner_spacy.evaluation.runner import evaluate_files

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    server = None  # held until the end: the llama.cpp server stops when it is dropped
    if (args.cache or args.backend or args.component or args.llamacpp) and not args.config:
        overrides = json.loads(args.backend) if args.backend else {}
        if args.llamacpp:
            from throughput import llama_cpp

            server, served = llama_cpp(args.threads)
            overrides = {**served, **overrides}
        settings = json.loads(args.component) if args.component else {}
        args.config = default_config(args.cache, overrides, Path(tempfile.mkdtemp()) / "default.cfg", settings)
    summary = {}
    for suite in args.suites.split(","):
        paths = [args.data / p for p in SUITES[suite]]
        start = time.perf_counter()
        limit = args.zeroshot_limit if suite == "zeroshot" and args.zeroshot_limit else args.limit
        result = evaluate_files(paths, config=args.config, limit=limit, batch_size=args.batch_size,
                                predictions=args.out / f"{suite}.predictions.jsonl", echo=lambda s: None,
                                ask_as=(lambda label: reworded(label, args.wording)) if args.wording else None)
        result["seconds"] = round(time.perf_counter() - start, 1)
        for name, r in result["datasets"].items():
            print(json.dumps({"suite": suite, "dataset": name, "limit": limit,
                              "string_f1": round(100 * r["string"]["f1"], 2),
                              "span_f1": round(100 * r["span"]["f1"], 2) if r.get("span") else None,
                              "queries": r.get("llm_queries", r.get("queries")),
                              "parse_failures": r.get("parse_failures"),
                              "sentences_per_s": r.get("sentences_per_second")}), flush=True)
        (args.out / f"{suite}.json").write_text(json.dumps(result, indent=1))
        for proto in ("string", "span"):
            (args.out / f"{suite}.{proto}.md").write_text(render_table(result, protocol=proto))
        # docs/evaluation.md's bar charts (needs the `bench` extra: matplotlib)
        plot_results(result, args.out / f"{suite}.png")
        summary[suite] = {k: round(100 * v, 2) for k, v in result["benchmark"].items()}
        summary[suite]["seconds"] = result["seconds"]
    print(json.dumps({"limit": args.limit, "mean_f1": summary}))


def default_config(cache: str, overrides: dict, path: Path, settings: Optional[dict] = None) -> Path:
    """The default pipeline, its backend changed by `overrides` and, with `cache`, wrapped in the
    answer cache; `settings` change the component's own."""
    import spacy

    from uniner_spacy.pipeline.component import DEFAULT_BACKEND

    backend = {**DEFAULT_BACKEND, **overrides}
    if cache:
        backend = {"@misc": "uniner.Cached.v1", "backend": backend, "path": cache}
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["entity"], "backend": backend, **(settings or {})})
    nlp.config.to_disk(path)
    return path


if __name__ == "__main__":
    main()
