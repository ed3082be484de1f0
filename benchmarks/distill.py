"""The LLM teaching a fast spaCy pipeline, measured: teacher against distilled CNN and transformer
students, the gold upper bound, a learning curve and each silver filter on and off.

Teacher annotations come from `uniner-spacy annotate` (the `distill` command's first step) over raw
text of the train split (a seeded sample), and over the first `--teacher-test` test sentences for
the teacher's own row; gold train labels are read only for the upper-bound rows. Every student is
scored with the span protocol on the full test split and on the teacher's test sentences, and
timed on the full test split. One JSON line per row, on stdout and appended to `--out`.

    # after: uniner-spacy annotate SAMPLE.jsonl SAMPLE.teacher.jsonl --labels ... --batch-size 256
    python benchmarks/distill.py --dataset conll --work .train/bench17 --rows teacher,cnn-1000,cnn-4000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("UNINER_DATA", REPO.parent / "shared" / "data"))

DATASETS = {
    # our label → the gold set's label
    "conll": {"train": "supervised/conll2003/train.json", "test": "supervised/conll2003/test.json",
              "labels": {"person": "person", "organization": "organization", "location": "location",
                         "miscellaneous": "else"}, "silver": "conll.train4000"},
    "bc5cdr": {"train": "supervised/bc5cdr/train.tsv", "test": "supervised/bc5cdr/test.tsv",
               "labels": {"chemical": "chemical", "disease": "disease"}, "silver": "bc5cdr.train1500"},
}
# the default silver filters of `uniner-spacy distill`, and each one's ablation
DEFAULT = {"drop_truncated": True, "min_score": 0.0, "consistency": 0.0}


def cpu_flags() -> List[str]:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":")[1].split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))


def rows_of(path: Path) -> List[dict]:
    from uniner_spacy.io import jsonl_rows

    return [row for _, row in jsonl_rows(path)]


def teacher_row(ds: Dict[str, Any], work: Path, name: str, test) -> Dict[str, Any]:
    """The teacher's own F1 on the test sentences it annotated, and its speed from its stats."""
    from uniner_spacy.distill.spacy_student import counts_to_scores

    rows = rows_of(work / f"{name}.test{len(test)}.teacher.jsonl")
    assert [r["text"] for r in rows] == [eg.text for eg in test], "teacher rows are not these test sentences"
    labels = ds["labels"]
    predicted = [[(e["start"], e["end"], labels[e["label"]]) for e in r["ents"] if e["label"] in labels] for r in rows]
    gold = [[(e.start, e.end, e.label) for e in eg.entities if e.label in labels.values()] for eg in test]
    out = counts_to_scores(predicted, gold, set(labels.values()))
    seconds = sum(r["stats"]["seconds"] for r in rows)
    words = sum(len(eg.text.split()) for eg in test)
    queries = sum(r["stats"]["queries"] for r in rows)
    return {"row": "teacher", "test_subset": out, "words_per_second": round(words / seconds, 1),
            "queries": queries, "seconds": round(seconds, 1), "complete": sum(r["_status"] == "ok" for r in rows)}


def speed_row(work: Path, dataset: str, labels: List[str], test) -> Dict[str, Any]:
    """Words/s of the teacher and of every student trained so far, on the same sentences, one after
    the other in this process: the ratio the distillation buys."""
    import spacy

    from uniner_spacy.pipeline.build import build_nlp

    texts = [eg.text for eg in test]
    words = sum(len(t.split()) for t in texts)

    def rate(nlp, batch_size: int) -> float:
        list(nlp.pipe(texts[:8], batch_size=batch_size))  # load and warm up
        start = time.perf_counter()
        list(nlp.pipe(texts, batch_size=batch_size))
        return round(words / (time.perf_counter() - start), 1)

    out: Dict[str, Any] = {"row": f"speed-{len(texts)}", "words": words, "teacher": rate(build_nlp(labels), 256)}
    for model in sorted((work / "runs").glob(f"{dataset}-*/training/model-best")):
        out[model.parent.parent.name[len(dataset) + 1:]] = rate(spacy.load(model), 256)
    out["words_per_second"] = out["teacher"]
    return out


def gold_docs(nlp, examples, labels: Dict[str, str]):
    from spacy.util import filter_spans

    back = {g: ours for ours, g in labels.items()}
    docs = []
    for eg in examples:
        doc = nlp.make_doc(eg.text)
        spans = [doc.char_span(e.start, e.end, label=back[e.label], alignment_mode="contract")
                 for e in eg.entities if e.label in back]
        doc.ents = filter_spans([s for s in spans if s is not None])
        docs.append(doc)
    return docs


def train_and_score(docs, student: str, out: Path, test, subset: int, labels: Dict[str, str], steps: int,
                    seed: int = 0) -> Dict[str, Any]:
    import spacy
    from spacy.tokens import DocBin

    from uniner_spacy.distill.spacy_student import score_spans, student_config, train_student

    docs = list(docs)
    random.Random(seed).shuffle(docs)
    n_dev = max(1, round(len(docs) * 0.1))
    out.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs[n_dev:]).to_disk(out / "train.spacy")
    DocBin(docs=docs[:n_dev]).to_disk(out / "dev.spacy")
    started = time.perf_counter()
    model = train_student(student_config(student, max_steps=steps, seed=seed), out / "train.spacy",
                          out / "dev.spacy", out / "training")
    train_seconds = time.perf_counter() - started
    nlp = spacy.load(model)
    full = score_spans(nlp, test, labels)
    part = score_spans(nlp, test[:subset], labels)
    return {"train_docs": len(docs) - n_dev, "dev_docs": n_dev, "train_seconds": round(train_seconds, 1),
            "steps": steps, "test_full": {k: full[k] for k in ("p", "r", "f1", "per_label")},
            "test_subset": {k: part[k] for k in ("p", "r", "f1", "per_label")},
            "words_per_second": full["words_per_second"]}


def latest(path: Path) -> Dict[tuple, dict]:
    """The last result of each (dataset, row) in a results file."""
    out: Dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[(r["dataset"], r["row"])] = r
    return out


def plot(results: Path, png: Path) -> None:
    """F1 on the teacher's test sentences against words/s (log scale), one point per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = latest(results)
    for ax, dataset in zip(axes, DATASETS):
        # a speed row times every model on the same text in one run: its figures win where it has them
        timed = next((r for (ds, name), r in rows.items() if ds == dataset and name.startswith("speed-")), {})
        for (ds, name), r in sorted(rows.items()):
            if ds != dataset or "test_subset" not in r:
                continue
            r = {**r, "words_per_second": timed.get(name, r["words_per_second"])}
            colour = {"teacher": "black", "transformer": "tab:purple"}.get(name, "tab:green" if name.startswith(
                "gold") else "tab:blue")
            ax.scatter(r["words_per_second"], r["test_subset"]["f1"], color=colour)
            ax.annotate(name, (r["words_per_second"], r["test_subset"]["f1"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("words/s (2 CPU threads)")
        ax.set_ylabel(f"span F1, first {next(iter(rows.values()))['teacher_test']} test sentences")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS))
    parser.add_argument("--work", type=Path, default=REPO / ".train" / "bench17")
    parser.add_argument("--rows", default="teacher,cnn", help="teacher, cnn, cnn-N (first N silver docs), "
                        "gold-N, transformer, filters-none, no-truncated, min-score-X, consistency-X")
    parser.add_argument("--teacher-test", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "distill.jsonl")
    parser.add_argument("--plot", type=Path, default=None, help="only draw the results in --out to this PNG")
    args = parser.parse_args()
    if args.plot:
        return plot(args.out, args.plot)

    import spacy
    import torch

    from uniner_spacy.distill.silver import SilverFilters, silver_docs
    from uniner_spacy.evaluation.loaders import load

    torch.set_num_threads(os.cpu_count() or 1)
    if args.dataset is None:
        parser.error("--dataset is needed (or --plot)")
    ds = DATASETS[args.dataset]
    labels: Dict[str, str] = ds["labels"]
    test = load(DATA / ds["test"])
    silver = rows_of(args.work / f"{ds['silver']}.teacher.jsonl")
    nlp = spacy.blank("en")
    common = {"dataset": args.dataset, "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
              "threads": torch.get_num_threads(), "test_sentences": len(test), "teacher_test": args.teacher_test}
    for name in filter(None, args.rows.split(",")):
        started = time.perf_counter()
        result: Dict[str, Any]
        if name == "teacher":
            result = teacher_row(ds, args.work, args.dataset, test[: args.teacher_test])
        elif name.startswith("speed-"):
            result = speed_row(args.work, args.dataset, list(labels), test[: int(name.split("-")[1])])
        else:
            student, n, filters = "cnn", len(silver), dict(DEFAULT)
            gold = False
            if name.startswith(("cnn-", "gold-")):
                n = int(name.split("-")[1])
                gold = name.startswith("gold-")
            elif name == "transformer":
                student = "transformer"
            elif name == "filters-none":
                filters = {"drop_truncated": False, "min_score": 0.0, "consistency": 0.0}
            elif name == "keep-truncated":
                filters["drop_truncated"] = False
            elif name.startswith("min-score-"):
                filters["min_score"] = float(name.split("-")[-1])
            elif name.startswith("consistency-"):
                filters["consistency"] = float(name.split("-")[-1])
            elif name != "cnn":
                raise SystemExit(f"unknown row {name!r}")
            rows = silver[:n]
            info: Dict[str, Any]
            if gold:  # the upper bound: the same sentences with their gold labels
                by_text = {eg.text: eg for eg in load(DATA / ds["train"])}
                docs = gold_docs(nlp, [by_text[r["text"]] for r in rows], labels)
                info = {"silver": None}
            else:
                docs, report = silver_docs(nlp, rows, SilverFilters(**filters), list(labels))
                info = {"filters": filters, "silver": report.to_dict()}
            result = {"row": name, "student": student, "sentences": n, **info,
                      **train_and_score(docs, student, args.work / "runs" / f"{args.dataset}-{name}", test,
                                        args.teacher_test, labels, args.steps)}
        result = {**common, **result, "wall_seconds": round(time.perf_counter() - started, 1)}
        line = json.dumps(result)
        print(line, flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())
