"""Distil a fast spaCy `ner` pipeline from the LLM pipeline: the Python API behind `uniner-spacy distill`.

`distill_pipeline` runs the four steps (docs/distillation.md): the teacher annotates the corpus into
`silver.jsonl` (resumable, like `corpus.annotate_items`); the silver is cleaned (`SilverFilters`,
per-label thresholds fitted on a few gold documents with `calibrate=`) and split into spaCy's
train/dev corpora; `spacy train` trains the student; the best model is packaged as a pipeline
folder that loads without uniner-spacy. It returns a `DistillResult`: `pipeline` is None while the
silver is not complete (a rerun of the same call finishes it; nothing is trained on a part).

    result = distill_pipeline("corpus.txt", "out", labels=["person", "organization"], max_steps=500)
    nlp = spacy.load(result.pipeline)
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ..corpus import annotate_items, read_corpus
from ..errors import ConfigError, InputError
from ..io import jsonl_rows
from ..runs import Echo, RunMismatch, RunRecord, Summary
from ..types import Labels
from .silver import SilverFilters, calibrated_thresholds, silver_docs
from .spacy_student import gold_spans, package_student, score_spans, student_config, train_student


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


@dataclass
class DistillResult:
    """What a distillation left in its folder: the packaged `pipeline` (None while the teacher's
    `summary` is not complete), the silver's counts, the calibrated thresholds and the gold scores."""

    summary: Summary
    pipeline: Optional[Path] = None
    silver: Dict[str, Any] = field(default_factory=dict)
    thresholds: Optional[Dict[str, float]] = None
    metrics: Optional[Dict[str, Any]] = None


def distill_pipeline(
    corpus: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    labels: Optional[Labels] = None,
    config: Optional[Union[str, Path]] = None,
    filters: SilverFilters = SilverFilters(),
    student: str = "cnn",
    encoder: Optional[Union[str, Path]] = None,
    max_steps: int = 2000,
    dev_share: float = 0.1,
    seed: int = 0,
    batch_size: int = 256,
    text_field: str = "text",
    max_failed_batches: int = 3,
    gold: Optional[Union[str, Path]] = None,
    gold_labels: Optional[Mapping[str, str]] = None,
    calibrate: Optional[Union[str, Path]] = None,
    calibrate_limit: int = 300,
    reviewed: Optional[Union[str, Path]] = None,
    echo: Echo = _stderr,
) -> DistillResult:
    """Teach a spaCy `ner` student (`student`: "cnn" or "transformer" over `encoder`) the labels of
    the teacher built from `labels` and/or `config` (default: the embedded student) on the texts of
    `corpus`, everything written under `output_dir`.

    `filters` chooses what of the silver is taught; `calibrate` (gold documents, never `gold`'s)
    replaces `filters.min_score` by each label's threshold fitted on the teacher's answers to its first
    `calibrate_limit` documents. `reviewed` (a corrected review export or gold .spacy) is trained on in
    place of the silver of the same texts. `gold` is scored on at the end (`gold_labels`: taught label
    → gold label where they differ). Raises `UninerError` subclasses for what cannot run: `InputError`
    (no corpus, too few usable documents), `ConfigError` (labels, config, `dev_share`), `RunMismatch`
    (a silver of another run in `output_dir`), `RunLocked`, `ReviewError`.
    """
    import spacy
    from spacy.tokens import DocBin

    from ..pipeline.build import build_nlp, uniner_pipe

    corpus, output_dir = Path(corpus), Path(output_dir)
    if not 0 < dev_share < 1:
        raise ConfigError(f"dev_share must lie between 0 and 1, not {dev_share}")
    items = read_corpus(corpus, text_field)
    teacher = build_nlp(labels, config)
    pipe = uniner_pipe(teacher)
    taught, teacher_id = list(pipe.labels), pipe.backend.model_id
    # a bad review export stops us before the teacher runs
    checked = _reviewed_docs(Path(reviewed), taught, echo) if reviewed is not None else []
    silver = output_dir / "silver.jsonl"
    echo(f"1/4 teacher: {len(items)} documents, labels {', '.join(taught)} → {silver}")
    summary = _resumed(teacher, items, silver, batch_size, max_failed_batches, echo,
                       "The silver is not complete: rerun the same command to finish it (nothing is trained on a part)")
    if not summary.ok:
        return DistillResult(summary)
    rename = {label: (gold_labels or {}).get(label, label) for label in taught}
    thresholds = None
    if calibrate is not None:
        thresholds = calibrated_min_scores(teacher, taught, Path(calibrate), limit=calibrate_limit, rename=rename,
                                           output_dir=output_dir, batch_size=batch_size,
                                           max_failed_batches=max_failed_batches, echo=echo)
        if thresholds is None:
            return DistillResult(summary)
        filters = replace(filters, min_score=thresholds)
    del teacher, pipe
    docs, report = silver_docs(spacy.blank("en"), [row for _, row in jsonl_rows(silver)], filters, taught)
    reviewed_texts = {r.text for r in checked}
    docs = [d for d in docs if d.text not in reviewed_texts]
    random.Random(seed).shuffle(docs)
    n_dev = max(1, round(len(docs) * dev_share))
    if len(docs) - n_dev < 1:
        raise InputError(f"{len(docs)} usable silver documents are too few to train on")
    corpus_dir = output_dir / "corpus"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs[n_dev:] + checked).to_disk(corpus_dir / "train.spacy")
    DocBin(docs=docs[:n_dev]).to_disk(corpus_dir / "dev.spacy")
    silver_info = {"filters": asdict(filters), **report.to_dict(), "train": len(docs) - n_dev, "dev": n_dev,
                   "reviewed": len(checked)}
    (output_dir / "silver.json").write_text(json.dumps(silver_info, indent=1))
    echo(f"2/4 silver: {report.documents} documents, {report.entities} entities "
         f"({report.low_score} low-score, {report.inconsistent} inconsistent marked missing; "
         f"{report.truncated} truncated documents left out) → {corpus_dir}")
    echo(f"3/4 training a {student} ner ({max_steps} steps) → {output_dir / 'training'}")
    model = train_student(student_config(student, encoder=encoder, max_steps=max_steps, seed=seed),
                          corpus_dir / "train.spacy", corpus_dir / "dev.spacy", output_dir / "training")
    name = "uniner_distilled_" + "_".join(label_key_name(label) for label in taught)[:60]
    pipeline = package_student(model, output_dir / "pipeline", name=name, labels=taught,
                               teacher={"model": teacher_id, "config": str(config) if config else "embedded"},
                               silver=silver_info)
    echo(f"4/4 packaged: {pipeline} (spacy.load it; `python -m spacy package` makes it installable)")
    metrics = None
    if gold is not None:
        from ..evaluation.loaders import load

        metrics = score_spans(spacy.load(pipeline), load(Path(gold)), rename)
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        echo(f"span F1 on {gold}: {metrics['f1']:.1f} (P {metrics['p']:.1f}, R {metrics['r']:.1f}), "
             f"{metrics['words_per_second']:.0f} words/s")
    return DistillResult(summary, pipeline, silver_info, thresholds, metrics)


def calibrated_min_scores(teacher, taught: Sequence[str], gold_path: Path, *, limit: int = 300,
                          rename: Optional[Mapping[str, str]] = None, output_dir: Path,
                          batch_size: int = 256, max_failed_batches: int = 3,
                          echo: Echo = _stderr) -> Optional[Dict[str, float]]:
    """Each taught label's silver threshold, fitted on the `teacher`'s answers to the first `limit`
    documents of `gold_path` (`calibration.jsonl` in `output_dir`, resumable like the silver); None
    while those answers are not complete. `rename`: taught label → its name in the gold."""
    from ..evaluation.loaders import load

    if not gold_path.exists():
        raise InputError(f"Calibration gold {gold_path} does not exist")
    examples = load(gold_path)[:limit]
    items = [(eg.text, {"id": i}) for i, eg in enumerate(examples)]
    out = output_dir / "calibration.jsonl"
    echo(f"   calibration: the teacher on {len(items)} gold documents of {gold_path} → {out}")
    if not _resumed(teacher, items, out, batch_size, max_failed_batches, echo,
                    "The calibration answers are not complete: rerun the same command to finish them").ok:
        return None
    gold = gold_spans(examples, {(rename or {}).get(label, label): label for label in taught})
    thresholds = calibrated_thresholds([row for _, row in jsonl_rows(out)], gold, list(taught))
    for label in taught:
        if not any(g == label for spans in gold for _, _, g in spans):
            echo(f"   no {label} in the calibration gold: its threshold stays 0")
    echo("   thresholds: " + ", ".join(f"{label} {value:.3f}" for label, value in thresholds.items()))
    return thresholds


def label_key_name(label: str) -> str:
    """A label as a piece of a package name: `Medical condition` → `medical_condition`."""
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def _resumed(teacher, items, output: Path, batch_size: int, max_failed_batches: int, echo: Echo,
             unfinished: str) -> Summary:
    """The teacher's resumable run into `output`, its summary echoed (and `unfinished` where it is not
    complete); a run of other input or teacher there is refused, saying how to start over."""
    try:
        summary = annotate_items(teacher, items, output, record=RunRecord.of(items, teacher), resume=True,
                                 batch_size=batch_size, max_failed_batches=max_failed_batches, echo=echo)
    except RunMismatch as err:
        raise RunMismatch(f"{err}. Delete {output} (and its .run.json) to ask the teacher anew") from None
    for line in [*summary.lines(), *([] if summary.ok else [unfinished])]:
        echo(line)
    return summary


def _reviewed_docs(path: Path, taught: List[str], echo: Echo) -> list:
    """The reviewed documents to train on, their labels checked against the taught ones."""
    from ..review import training_docs

    docs, report = training_docs(path, taught)
    for line in report.lines() if report else []:
        echo(f"   reviewed: {line}")
    return docs
