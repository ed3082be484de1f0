"""The LLM teaching a fast spaCy pipeline, measured: teacher against distilled CNN and transformer
students, the gold upper bound, a learning curve and each silver filter on and off.

Teacher annotations come from `uniner-spacy annotate` (the `distill` command's first step) over raw
text of the train split (a seeded sample, `--silver`) and over the test split for the teacher's own
row (`--teacher`); either may be annotated in parts, named in order and read as one. Gold train
labels are read only for the upper-bound rows. Every student is scored with the span protocol on
the full test split (and on the teacher's sentences where those are only a prefix of it), once per
`--seeds` seed (the seed shuffles the silver into train/dev and seeds `spacy train`: the same
seeds for every row make the ablation paired). One JSON line per row, on stdout and appended to
`--out`.

    # after: uniner-spacy annotate PART.jsonl PART.teacher.jsonl --labels ... --batch-size 256
    python benchmarks/distill.py --dataset conll --rows teacher,cnn-1000,cnn-4000 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("UNINER_DATA", REPO.parent / "shared" / "data"))

DATASETS = {
    # our label → the gold set's label
    "conll": {"train": "supervised/conll2003/train.json", "test": "supervised/conll2003/test.json",
              "dev": "supervised/conll2003/dev.json",
              "labels": {"person": "person", "organization": "organization", "location": "location",
                         "miscellaneous": "else"}, "silver": "conll.train4000"},
    "bc5cdr": {"train": "supervised/bc5cdr/train.tsv", "test": "supervised/bc5cdr/test.tsv",
               "dev": "supervised/bc5cdr/devel.tsv",
               "labels": {"chemical": "chemical", "disease": "disease"}, "silver": "bc5cdr.train1500"},
}
# the default silver filters of `uniner-spacy distill`, and each one's ablation
DEFAULT = {"drop_truncated": True, "min_score": 0.0, "consistency": 0.0, "unsure_candidates": False}


def rows_of(path: Path) -> List[dict]:
    from uniner_spacy.io import jsonl_rows

    return [row for _, row in jsonl_rows(path)]


def teacher_rows(work: Path, parts: str) -> List[dict]:
    """The teacher's annotations of `PART.jsonl` files, `PART.teacher.jsonl`, in the order named."""
    return [row for part in parts.split(",") for row in rows_of(work / f"{part}.teacher.jsonl")]


def teacher_row(ds: Dict[str, Any], rows: List[dict], test) -> Dict[str, Any]:
    """The teacher's own F1 on the test sentences it annotated, and its speed from its stats."""
    from uniner_spacy.distill.spacy_student import counts_to_scores, gold_spans

    assert [r["text"] for r in rows] == [eg.text for eg in test], "teacher rows are not these test sentences"
    labels = ds["labels"]
    predicted = [[(e["start"], e["end"], labels[e["label"]]) for e in r["ents"] if e["label"] in labels] for r in rows]
    gold = gold_spans(test, {g: g for g in labels.values()})
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
        if re.search(r"-s\d+$", model.parent.parent.name):  # another seed of a row already timed
            continue
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


def calibrated(ds: Dict[str, Any], work: Path, name: str, n: int) -> Dict[str, float]:
    """`distill --calibrate`'s thresholds: the teacher's answers on the first N dev sentences
    (`DATASET.devN.teacher.jsonl`) against their gold labels."""
    from uniner_spacy.distill.silver import calibrated_thresholds
    from uniner_spacy.distill.spacy_student import gold_spans
    from uniner_spacy.evaluation.loaders import load

    rows = rows_of(work / f"{name}.dev{n}.teacher.jsonl")
    dev = load(DATA / ds["dev"])[:n]
    assert [r["text"] for r in rows] == [eg.text for eg in dev], "teacher rows are not these dev sentences"
    gold = gold_spans(dev, {g: label for label, g in ds["labels"].items()})
    return calibrated_thresholds(rows, gold, list(ds["labels"]))


def docs_digest(docs) -> str:
    """What a student is taught, independent of how a DocBin happens to order its strings."""
    import hashlib

    h = hashlib.sha256()
    for doc in docs:
        h.update(json.dumps([doc.text, [t.ent_iob_ + t.ent_type_ for t in doc]]).encode())
    return h.hexdigest()


def train_and_score(docs, student: str, out: Path, test, subset: int, labels: Dict[str, str], steps: int,
                    seed: int = 0) -> Dict[str, Any]:
    """Train (unless `out` already holds a model trained on the same docs with the same config: the
    seeds of a row added later reuse the ones done) and score on the test split."""
    import spacy
    from spacy.tokens import DocBin

    from uniner_spacy.distill.spacy_student import score_spans, student_config, train_student

    docs = list(docs)
    random.Random(seed).shuffle(docs)
    n_dev = max(1, round(len(docs) * 0.1))
    config = student_config(student, max_steps=steps, seed=seed)
    record = out / "trained.json"
    key = {"docs": docs_digest(docs[n_dev:]) + docs_digest(docs[:n_dev]), "config": config.to_str()}
    done = json.loads(record.read_text()) if record.exists() else {}
    if done.get("key") == key and (out / "training" / "model-best").exists():
        model, train_seconds = out / "training" / "model-best", done["train_seconds"]
    else:
        out.mkdir(parents=True, exist_ok=True)
        DocBin(docs=docs[n_dev:]).to_disk(out / "train.spacy")
        DocBin(docs=docs[:n_dev]).to_disk(out / "dev.spacy")
        started = time.perf_counter()
        model = train_student(config, out / "train.spacy", out / "dev.spacy", out / "training")
        train_seconds = round(time.perf_counter() - started, 1)
        record.write_text(json.dumps({"key": key, "train_seconds": train_seconds}))
    nlp = spacy.load(model)
    full = score_spans(nlp, test, labels)
    result = {"seed": seed, "train_docs": len(docs) - n_dev, "dev_docs": n_dev, "train_seconds": train_seconds,
              "steps": steps, "test_full": {k: full[k] for k in ("p", "r", "f1", "per_label")},
              "words_per_second": full["words_per_second"]}
    if subset < len(test):
        part = score_spans(nlp, test[:subset], labels)
        result["test_subset"] = {k: part[k] for k in ("p", "r", "f1", "per_label")}
    return result


def over_seeds(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The first seed's run in full, and every seed's F1 with their mean and spread."""
    f1 = [r["test_full"]["f1"] for r in runs]
    mean = sum(f1) / len(f1)
    sd = (sum((x - mean) ** 2 for x in f1) / (len(f1) - 1)) ** 0.5 if len(f1) > 1 else 0.0
    return {**runs[0], "seeds": [r["seed"] for r in runs], "f1_by_seed": f1, "f1_mean": round(mean, 2),
            "f1_sd": round(sd, 2), "per_label_by_seed": [r["test_full"]["per_label"] for r in runs]}


def latest(path: Path) -> Dict[tuple, dict]:
    """The last result of each (dataset, row) in a results file."""
    out: Dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[(r["dataset"], r["row"])] = r
    return out


def describe_row(name: str, r: Dict[str, Any]) -> str:
    """A row's name as the docs' tables say it."""
    if name == "teacher":
        return f"teacher (embedded student + conflicts; {r['queries']:,} queries, {r['seconds'] / 60:.0f} min)"
    student = "transformer (MiniLM-L6)" if r.get("student") == "transformer" else "CNN"
    if "gold" in name:
        return f"{student} on the gold labels of the same sentences"
    changed = {k: v for k, v in (r.get("filters") or {}).items() if DEFAULT.get(k) != v}
    what = {"drop_truncated": "truncated documents kept", "min_score": "entities below {} marked missing",
            "consistency": "names' majority label ({})", "unsure_candidates": "unsure candidates marked missing"}
    if name == "filters-none":
        return f"distilled {student}, no filter"
    if not changed:
        return f"distilled {student}"
    parts = []
    for key, value in changed.items():
        if key == "min_score" and isinstance(value, dict):
            parts.append("per-label thresholds from 300 dev sentences ("
                         + ", ".join(f"{k} {v:.2f}" for k, v in value.items()) + ")")
        else:
            parts.append(what[key].format(value))
    return f"distilled {student}, " + "; ".join(parts)


def table(results: Path, dataset: str) -> str:
    """The docs' table of one dataset: every row's span F1 on the full test split (mean over its
    seeds, each seed's figure), P / R and per-label F1 of its first seed, and words/s."""
    rows = {name: r for (ds, name), r in latest(results).items() if ds == dataset and "test_full" in r}
    labels = sorted(next(iter(rows.values()))["test_full"]["per_label"])
    ours = {g: o for o, g in DATASETS[dataset]["labels"].items()}
    head = ["model", "silver sentences", "F1 (seeds)", "P / R", *(ours[l] for l in labels), "words/s (own run)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = sorted(rows, key=lambda n: (n != "teacher", "gold" in n, n.startswith("transformer"),
                                        rows[n].get("sentences") or 0, not n.startswith("cnn"), n))
    for name in order:
        r, full = rows[name], rows[name]["test_full"]
        seeds = r.get("f1_by_seed") or [full["f1"]]
        f1 = f"**{r.get('f1_mean', full['f1']):.1f}**" + (f" ({', '.join(f'{x:.1f}' for x in seeds)})"
                                                          if len(seeds) > 1 else "")
        cells = [describe_row(name, r), f"{r['sentences']:,}" if r.get("sentences") else "–", f1,
                 f"{full['p']:.1f} / {full['r']:.1f}", *(f"{full['per_label'][l]['f1']:.1f}" for l in labels),
                 f"{r['words_per_second']:,.0f}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(results: Path, png: Path) -> None:
    """Span F1 on the full test split (the mean over seeds) against words/s (log scale), one point per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = latest(results)
    for ax, dataset in zip(axes, DATASETS):
        # a speed row times every model on the same text in one run: its figures win where it has them
        timed = next((r for (ds, name), r in rows.items() if ds == dataset and name.startswith("speed-")), {})
        for (ds, name), r in sorted(rows.items()):
            if ds != dataset or "test_full" not in r:
                continue
            wps, f1 = timed.get(name, r["words_per_second"]), r.get("f1_mean", r["test_full"]["f1"])
            colour = "black" if name == "teacher" else "tab:purple" if name.startswith("transformer") else (
                "tab:green" if name.startswith("gold") else "tab:blue")
            ax.scatter(wps, f1, color=colour, marker="s" if "gold" in name else "o")
            ax.annotate(name, (wps, f1), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("words/s (2 CPU threads)")
        ax.set_ylabel("span F1, full test split")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS))
    parser.add_argument("--work", type=Path, default=REPO / ".train" / "bench17")
    parser.add_argument("--rows", default="teacher,cnn", help="teacher, cnn, cnn-N (first N silver docs), "
                        "gold-N, transformer, transformer-N, transformer-gold-N, filters-none, keep-truncated, "
                        "min-score-X, consistency-X, unsure-candidates, calibrated-N (thresholds from N dev "
                        "sentences), speed-N")
    parser.add_argument("--silver", default=None, help="PART[,PART]: the silver's annotated parts, in order "
                        "(default: the dataset's sample, e.g. conll.train4000)")
    parser.add_argument("--teacher", default=None, help="PART[,PART]: the teacher's annotations of the test split, "
                        "in order, from its first sentence (default: DATASET.test1000,DATASET.test.rest)")
    parser.add_argument("--seeds", default="0", help="train every student row once per seed: 0,1,2")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "distill.jsonl")
    parser.add_argument("--plot", type=Path, default=None, help="only draw the results in --out to this PNG")
    parser.add_argument("--table", action="store_true", help="only print the docs' table of --dataset from --out")
    args = parser.parse_args()
    if args.plot:
        return plot(args.out, args.plot)
    if args.table:
        return print(table(args.out, args.dataset))

    import spacy
    import torch

    from uniner_spacy.backends.hf.hardware import speed_flags
    from uniner_spacy.distill.silver import SilverFilters, silver_docs
    from uniner_spacy.evaluation.loaders import load

    torch.set_num_threads(os.cpu_count() or 1)
    if args.dataset is None:
        parser.error("--dataset is needed (or --plot)")
    ds = DATASETS[args.dataset]
    labels: Dict[str, str] = ds["labels"]
    test = load(DATA / ds["test"])
    teacher = teacher_rows(args.work, args.teacher or f"{args.dataset}.test1000,{args.dataset}.test.rest")
    silver = teacher_rows(args.work, args.silver or ds["silver"])
    seeds = [int(s) for s in args.seeds.split(",")]
    nlp = spacy.blank("en")
    common = {"dataset": args.dataset, "cpu": platform.processor() or platform.machine(), "cpu_flags": speed_flags(),
              "threads": torch.get_num_threads(), "test_sentences": len(test), "teacher_test": len(teacher)}
    for name in filter(None, args.rows.split(",")):
        started = time.perf_counter()
        result: Dict[str, Any]
        if name == "teacher":
            result = teacher_row(ds, teacher, test[: len(teacher)])
            if len(teacher) == len(test):
                result["test_full"] = result.pop("test_subset")
        elif name.startswith("speed-"):
            result = speed_row(args.work, args.dataset, list(labels), test[: int(name.split("-")[1])])
        else:
            student, n, filters = "cnn", len(silver), dict(DEFAULT)
            gold = False
            rest = name
            if rest.startswith("transformer"):
                student, rest = "transformer", rest[len("transformer"):].lstrip("-") or "cnn"
            if rest.startswith(("cnn-", "gold-")) or rest.isdigit():
                n = int(rest.split("-")[-1])
                gold = rest.startswith("gold-")
                if n > len(silver):
                    raise SystemExit(f"{name}: the silver has {len(silver)} sentences")
            elif rest == "filters-none":
                filters = {**DEFAULT, "drop_truncated": False}
            elif rest == "keep-truncated":
                filters["drop_truncated"] = False
            elif rest.startswith("min-score-"):
                filters["min_score"] = float(rest.split("-")[-1])
            elif rest.startswith("consistency-"):
                filters["consistency"] = float(rest.split("-")[-1])
            elif rest == "unsure-candidates":
                filters["unsure_candidates"] = True
            elif rest.startswith("calibrated-"):  # per-label thresholds from the teacher on N gold dev sentences
                filters["min_score"] = calibrated(ds, args.work, args.dataset, int(rest.split("-")[-1]))
            elif rest != "cnn":
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
            runs = [train_and_score(docs, student, args.work / "runs" / (f"{args.dataset}-{name}"
                                    + (f"-s{seed}" if seed else "")), test, len(teacher), labels, args.steps, seed)
                    for seed in seeds]
            result = {"row": name, "student": student, "sentences": n, **info, **over_seeds(runs)}
        result = {**common, **result, "wall_seconds": round(time.perf_counter() - started, 1)}
        line = json.dumps(result)
        print(line, flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())
