"""Run any spaCy pipeline over loaded examples and score it with both protocols.

The pipeline only has to set `doc.ents` with `label_` = type name; the UniNER
component also leaves `doc._.uniner_stats` (queries, parse failures,
unaligned mentions, seconds), which is summed when present. Each data set
(`AnnotatedText.source`) gets its own pipeline from `nlp_factory(labels)`, because
each asks its own label set.
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import ConfigError
from ..types import AnnotatedText
from .protocols import benchmark_score, examples_to_predictions, score_queries, write_jsonl

NlpFactory = Union[Language, Callable[[List[str]], Language]]
PROTOCOLS = ("string", "span", "both")


def doc_predictions(doc: Doc, example: AnnotatedText, labels: Sequence[str],
                    spans_key: str = "uniner") -> List[Dict[str, Any]]:
    """One query dict per label: the texts and char spans of `doc.ents` with that label, and, where
    the pipe keeps them, every candidate span of it (`doc.spans[spans_key]`, overlaps included:
    what `benchmarks/claims.py` counts)."""
    rows = []
    kept = doc.spans[spans_key] if spans_key in doc.spans else None
    for label in labels:
        ents = [e for e in doc.ents if e.label_ == label]
        row = {"text": example.text, "type": label,
               "prediction": list(dict.fromkeys(e.text for e in ents)),
               "spans": [[e.start_char, e.end_char] for e in ents],
               "source": example.source}
        if kept is not None:
            row["candidates"] = [[s.start_char, s.end_char] for s in kept if s.label_ == label]
        rows.append(row)
    return rows


def _doc_stats(docs: Sequence[Doc]) -> Dict[str, Any]:
    """Sum of the component's per-doc stats; zeros when the extension is absent."""
    total: Dict[str, Any] = {"queries": 0, "parse_failures": 0, "unaligned": [], "seconds": 0.0}
    if not Doc.has_extension("uniner_stats"):
        return total
    for doc in docs:
        stats = doc._.uniner_stats or {}
        total["queries"] += int(stats.get("queries", 0))
        total["parse_failures"] += int(stats.get("parse_failures", 0))
        total["unaligned"].extend(list(u) for u in stats.get("unaligned", []))
        total["seconds"] += float(stats.get("seconds", 0.0))
    return total


def _query_labels(example: AnnotatedText, labels: Optional[Sequence[str]]) -> List[str]:
    return list(example.labels if labels is None else labels)


def evaluate_dataset(nlp: Language, examples: Sequence[AnnotatedText],
                     labels: Optional[Sequence[str]] = None, protocol: str = "both",
                     batch_size: int = 32) -> Dict[str, Any]:
    """Run `nlp` over one data set's examples; return scores, stats and the predictions."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    start = time.perf_counter()
    docs = list(nlp.pipe((eg.text for eg in examples), batch_size=batch_size))
    seconds = time.perf_counter() - start
    gold: List[Dict[str, Any]] = []
    predicted: List[Dict[str, Any]] = []
    for doc, eg in zip(docs, examples):
        asked = _query_labels(eg, labels)
        scoped = AnnotatedText(eg.text, eg.entities, asked, eg.source)
        gold.extend(examples_to_predictions([scoped]))
        predicted.extend(doc_predictions(doc, eg, asked))
    scores = score_queries(gold, predicted, spans=protocol != "string")
    if protocol == "span":
        scores["string"] = None
    stats = _doc_stats(docs)
    return {
        **scores,
        "examples": len(examples),
        "labels": list(dict.fromkeys(l for eg in examples for l in _query_labels(eg, labels))),
        "parse_failures": stats["parse_failures"],
        "llm_queries": stats["queries"],
        "unaligned": len(stats["unaligned"]),
        "unaligned_sample": stats["unaligned"][:20],
        "seconds": seconds,
        "component_seconds": stats["seconds"],
        "sentences_per_second": len(examples) / seconds if seconds > 0 else 0.0,
        "predictions": predicted,
    }


def evaluate_pipeline(nlp_factory: NlpFactory, examples: Sequence[AnnotatedText],
                      labels: Optional[Sequence[str]] = None, protocol: str = "both",
                      batch_size: int = 32,
                      predictions_path: Optional[Union[str, Path]] = None) -> Dict[str, Any]:
    """Evaluate a pipeline per data set (`AnnotatedText.source`) under one or both protocols.

    `nlp_factory` is a Language used as is, or a callable given each data
    set's label list (the union of its examples' labels, or `labels` when
    set) that returns the pipeline to run. `labels` also restricts which
    (text, type) queries are scored. Returns {"datasets": {name: result},
    "benchmark": mean F1 per protocol}; predictions go to `predictions_path`
    as JSONL when given.
    """
    groups: Dict[str, List[AnnotatedText]] = defaultdict(list)
    for eg in examples:
        groups[eg.source or "unknown"].append(eg)
    results: Dict[str, Dict[str, Any]] = {}
    all_predictions: List[Dict[str, Any]] = []
    for name, group in groups.items():
        ds_labels = list(labels) if labels is not None else list(
            dict.fromkeys(l for eg in group for l in eg.labels))
        nlp = nlp_factory if isinstance(nlp_factory, Language) else nlp_factory(ds_labels)
        result = evaluate_dataset(nlp, group, labels, protocol, batch_size)
        all_predictions.extend(result.pop("predictions"))
        results[name] = result
    if predictions_path is not None:
        write_jsonl(all_predictions, predictions_path)
    benchmark = {
        proto: benchmark_score({k: r[proto]["f1"] for k, r in results.items() if r.get(proto)})
        for proto in ("string", "span")
        if any(r.get(proto) for r in results.values())
    }
    return {"protocol": protocol, "datasets": results, "benchmark": benchmark}


def format_results(result: Dict[str, Any]) -> str:
    """A per-data-set table: P/R/F1 per protocol, queries, failures, speed."""
    head = (f"{'data set':<28}{'proto':<8}{'P':>7}{'R':>7}{'F1':>7}"
            f"{'queries':>9}{'parse-fail':>11}{'unaligned':>10}{'sent/s':>8}")
    lines = [head, "-" * len(head)]
    for name, r in result["datasets"].items():
        for proto in ("string", "span"):
            s = r.get(proto)
            if not s:
                continue
            lines.append(
                f"{name[:27]:<28}{proto:<8}{100 * s['precision']:>7.1f}{100 * s['recall']:>7.1f}"
                f"{100 * s['f1']:>7.1f}{r.get('llm_queries', r.get('queries', 0)):>9}"
                f"{r.get('parse_failures', 0):>11}"
                f"{r.get('unaligned', 0) if isinstance(r.get('unaligned'), int) else len(r.get('unaligned') or []):>10}"
                f"{r.get('sentences_per_second', 0):>8.2f}"
            )
    for proto, f1 in result.get("benchmark", {}).items():
        lines.append(f"{'mean':<28}{proto:<8}{'':>14}{100 * f1:>7.1f}")
    return "\n".join(lines)


def load_files(paths: Sequence[Union[str, Path]], limit: Optional[int] = None,
               format: Optional[str] = None) -> List[AnnotatedText]:
    """The examples of every file, each file's data set named by its folder (and file, where two
    files share a folder name)."""
    from .loaders import load, source_name

    files = [Path(p) for p in paths]
    names = [source_name(p) for p in files]
    examples: List[AnnotatedText] = []
    for path, name in zip(files, names):
        source = name if names.count(name) == 1 else f"{name}/{path.stem}"
        examples.extend(load(path, format=format, limit=limit, source=source))
    return examples


def evaluate_files(
    paths: Sequence[Union[str, Path]],
    config: Optional[Union[str, Path]] = None,
    limit: Optional[int] = None,
    protocol: str = "both",
    batch_size: int = 32,
    predictions: Optional[Union[str, Path]] = None,
    format: Optional[str] = None,
    echo: Callable[[str], None] = print,
    ask_as: Optional[Callable[[str], str]] = None,
) -> Dict[str, Any]:
    """`uniner-spacy evaluate`: one pipeline (and one loaded model) for all files.

    Each data set asks its own labels; the model is loaded once and the
    component's labels are switched per data set. `ask_as` words each label's
    question differently (the entities keep the label): how much F1 depends
    on how a label is written.
    """
    from ..pipeline.build import build_nlp, uniner_pipe

    examples = load_files(paths, limit=limit, format=format)
    nlp = build_nlp(["entity"], config)
    component = uniner_pipe(nlp)
    if ask_as is not None:
        component.question_mode = "definition"  # the question names the label's description: its wording

    def factory(labels: List[str]) -> Language:
        component.initialize(labels={label: ask_as(label) for label in labels} if ask_as else labels)
        return nlp

    result = evaluate_pipeline(factory, examples, protocol=protocol, batch_size=batch_size,
                               predictions_path=predictions)
    result["limit"] = limit
    echo(format_results(result))
    return result
