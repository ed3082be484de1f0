"""Ablation of the hybrid stages: what each step adds, under both protocols.

Steps are cumulative, in this order (`--steps` may leave some out; they stay off):
  raw          exact / case-insensitive alignment only, overlaps resolved first-come
  +align       fuzzy alignment (`fuzzy_threshold`) and the `score` overlap policy (the defaults)
  +paraphrase  also ask each label's nearest Pile-NER types (uniner.Paraphrases.v1)
  +conflicts   re-score competing labels with context embeddings (uniner.Conflicts.v1)
  +rules       the shipped rule set for the data set's domain (uniner.Rules.v1)
  +precision   agreement with en_core_web_sm (uniner.PrecisionCheck.v1, rescore)

Data: the zero-shot dev sets (CrossNER dev, MIT train) and two supervised test
sets (CoNLL03, BC5CDR), found with `iter_data_files`. One model load serves
every step: the component's settings are switched between runs. Prints one
JSON line per (step, data set) and one per step with the means.

    python benchmarks/ablation.py --limit 50 --datasets crossner_ai,conll2003
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("UNINER_DATA", REPO.parent / "shared" / "data"))
SUPERVISED = ("conll2003", "bc5cdr")
STEPS = ("raw", "+align", "+paraphrase", "+conflicts", "+rules", "+precision")
BIOMEDICAL = {"bc5cdr", "bc2gm", "ncbi", "anatem", "genia"}
SOCIAL = {"broad_twitter", "harveyner"}


def data_files(root: Path, datasets: Optional[List[str]]) -> List[tuple]:
    """(suite, DataFile) for the zero-shot dev sets and the two supervised test sets."""
    from uniner_spacy.evaluation.loaders import iter_data_files

    zero = {}
    for f in iter_data_files(root, folders=("zeroshot_dev",)):
        # CrossNER has a dev split; MIT sets only train (as in benchmarks/quality.py)
        if f.split == "dev" or (f.dataset.startswith("mit_") and f.dataset not in zero):
            zero[f.dataset] = f
    sup = [f for f in iter_data_files(root, folders=("supervised",), splits=("test",)) if f.dataset in SUPERVISED]
    out = [("zeroshot", f) for f in zero.values()] + [("supervised", f) for f in sup]
    return [(s, f) for s, f in out if not datasets or f.dataset in datasets]


def rule_set(dataset: str) -> str:
    return "biomedical" if dataset in BIOMEDICAL else "social_media" if dataset in SOCIAL else "default"


def configure(component, step: str, dataset: str, stages: Dict[str, object], steps: List[str]) -> None:
    """Switch the component to `step` with every requested step before it (skipped steps stay off)."""
    from uniner_spacy.stages.rules import load_rules

    on = set(steps[: steps.index(step) + 1])
    component.fuzzy_threshold = 90.0 if "+align" in on else 0.0  # 0 disables fuzzy alignment
    component.overlap_policy = "score" if "+align" in on else "first"
    component.paraphrases = stages["paraphrase"] if "+paraphrase" in on else None
    component._extra_types = None
    chain = {}
    if "+conflicts" in on:
        chain["conflicts"] = stages["conflicts"]
    if "+rules" in on:
        chain["rules"] = load_rules(rule_set(dataset))
    if "+precision" in on:
        chain["precision"] = stages["precision"]
    component.stages = chain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--model", default="embedded", help="uniner.HF.v1 model: embedded, a path or a .gguf")
    ap.add_argument("--limit", type=int, default=50, help="first N examples of each file")
    ap.add_argument("--datasets", default="", help="comma-separated data set names (default: all)")
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=256,
                    help="as the default backend, so its answers are cached too")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "uniner-spacy" / "ablation.sqlite"),
                    help="answer cache shared by the steps ('' to disable)")
    args = ap.parse_args()
    import spacy
    import torch

    import uniner_spacy  # noqa: F401
    from uniner_spacy.evaluation.loaders import load
    from uniner_spacy.evaluation.runner import evaluate_pipeline
    from uniner_spacy.stages.conflicts import make_conflicts
    from uniner_spacy.stages.paraphrases import make_paraphrases
    from uniner_spacy.stages.precision import make_precision_check

    torch.set_num_threads(args.threads)
    steps = [s for s in args.steps.split(",") if s]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise SystemExit(f"unknown steps {unknown}; choose from {STEPS}")
    files = data_files(args.data, [d for d in args.datasets.split(",") if d])
    if not files:
        raise SystemExit(f"no data files under {args.data} for --datasets {args.datasets!r}")
    loaded = {f.dataset: (suite, load(f.path, format=f.format, limit=args.limit, source=f.dataset))
              for suite, f in files}
    nlp = spacy.blank("en")
    backend = {"@misc": "uniner.HF.v1", "model": args.model, "max_new_tokens": args.max_new_tokens,
               "prefix_sharing": True}
    if args.cache:  # steps that ask the same questions reuse the answers
        backend = {"@misc": "uniner.Cached.v1", "backend": backend, "path": args.cache}
    nlp.add_pipe("uniner", config={"labels": ["entity"], "backend": backend})
    component = nlp.get_pipe("uniner")
    # built once, and only when a requested step needs them (each loads a model)
    stages = {
        "paraphrase": make_paraphrases(top_k=1, min_similarity=0.7) if "+paraphrase" in steps else None,
        "conflicts": make_conflicts() if "+conflicts" in steps else None,
        "precision": make_precision_check(mode="rescore") if "+precision" in steps else None,
    }
    for step in steps:
        per_suite: Dict[str, Dict[str, List[float]]] = {}
        for dataset, (suite, examples) in loaded.items():
            configure(component, step, dataset, stages, steps)

            def factory(labels: List[str]):
                component.initialize(labels=labels)
                return nlp

            start = time.perf_counter()
            result = evaluate_pipeline(factory, examples, batch_size=args.batch_size)
            r = result["datasets"][dataset]
            row = {"step": step, "suite": suite, "dataset": dataset, "examples": r["examples"],
                   "string_f1": round(100 * r["string"]["f1"], 2),
                   "span_f1": round(100 * r["span"]["f1"], 2) if r.get("span") else None,
                   "queries": r.get("llm_queries"), "parse_failures": r.get("parse_failures"),
                   "seconds": round(time.perf_counter() - start, 1)}
            print(json.dumps(row), flush=True)
            agg = per_suite.setdefault(suite, {"string_f1": [], "span_f1": []})
            agg["string_f1"].append(row["string_f1"])
            if row["span_f1"] is not None:
                agg["span_f1"].append(row["span_f1"])
        print(json.dumps({"step": step, "limit": args.limit, "mean": {
            suite: {k: round(sum(v) / len(v), 2) if v else None for k, v in agg.items()}
            for suite, agg in per_suite.items()}}), flush=True)


if __name__ == "__main__":
    main()
