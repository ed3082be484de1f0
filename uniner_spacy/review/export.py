"""Predictions as the tasks each review tool imports with pre-annotations.

- Label Studio: a JSON list of tasks, `{"data": {"text", fields…, "uniner"}, "predictions": [{"result":
  [...], "score"}]}`, each region with its own `score`; the labelling config goes beside it.
- Prodigy: JSONL in the `ner_manual` task format, `{"text", "tokens", "spans": [{"start", "end",
  "token_start", "token_end", "label", "score"}], "meta"}` (`token_end` inclusive, as Prodigy has it).
- doccano: JSONL for sequence labelling, `{"text", "label": [[start, end, label], ...], fields…}`;
  doccano has no place for a score, so the scores ride in the `uniner` field.

Every task keeps the document's id and fields, and a `uniner` object with what the way back needs.
Documents are never cut: a long one is one task.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Union
from xml.sax.saxutils import quoteattr

from ..errors import ReviewError
from ..io import jsonl_line
from ..palette import label_colors
from .predictions import BOOKKEEPING, ReviewDoc

FORMATS = ("label-studio", "prodigy", "doccano")
# the names the Label Studio config gives its tags; the way back checks results against them
LS_FROM, LS_TO = "label", "text"
MODEL_VERSION = "uniner-spacy"


def _ordered(docs: Sequence[ReviewDoc], uncertain_first: bool) -> List[ReviewDoc]:
    """In input order, or the documents whose least certain entity is least certain first (their
    entities least certain first too, where the tool lists regions in the order given)."""
    if not uncertain_first:
        return list(docs)
    return sorted(docs, key=ReviewDoc.uncertainty_key)


def _by_score(doc: ReviewDoc, uncertain_first: bool):
    if not uncertain_first:
        return list(doc.ents)
    return sorted(doc.ents, key=lambda e: (e.score if e.score is not None else 1.0, e.start))


def label_studio_task(doc: ReviewDoc, uncertain_first: bool = False) -> Dict[str, Any]:
    result = [{"id": f"p{k}", "from_name": LS_FROM, "to_name": LS_TO, "type": "labels",
               "value": {"start": e.start, "end": e.end, "text": doc.text[e.start:e.end], "labels": [e.label]},
               **({"score": e.score} if e.score is not None else {})}
              for k, e in enumerate(_by_score(doc, uncertain_first))]
    reserved = {"text", BOOKKEEPING}
    data = {"text": doc.text, **{k: v for k, v in doc.fields.items() if k not in reserved},
            BOOKKEEPING: doc.bookkeeping()}
    prediction: Dict[str, Any] = {"model_version": MODEL_VERSION, "result": result}
    scores = [e.score for e in doc.ents if e.score is not None]
    if scores:  # the Data Manager sorts tasks by it: the least certain entity
        prediction["score"] = min(scores)
    return {"data": data, "predictions": [prediction]}


def prodigy_task(doc: ReviewDoc, tokenizer, uncertain_first: bool = False) -> Dict[str, Any]:
    tokenized = tokenizer(doc.text)
    tokens = [{"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)}
              for t in tokenized]
    spans = []
    for e in sorted(doc.ents, key=lambda e: e.start):
        span = tokenized.char_span(e.start, e.end)
        if span is None:
            raise ReviewError(f"document {doc.id!r}: the entity {doc.text[e.start:e.end]!r} ({e.start}-{e.end}, "
                              f"{e.label}) does not start and end on a token; Prodigy spans must")
        spans.append({"start": e.start, "end": e.end, "token_start": span.start, "token_end": span.end - 1,
                      "label": e.label, **({"score": e.score} if e.score is not None else {})})
    meta = {"id": doc.id, **{k: v for k, v in doc.fields.items() if k != "id"}}
    scores = [e.score for e in doc.ents if e.score is not None]
    if scores and uncertain_first:
        meta["min_score"] = round(min(scores), 4)
    return {"text": doc.text, "tokens": tokens, "spans": spans, "meta": meta, BOOKKEEPING: doc.bookkeeping()}


def doccano_task(doc: ReviewDoc, uncertain_first: bool = False) -> Dict[str, Any]:
    reserved = {"text", "label", "entities", "id", BOOKKEEPING}
    return {"text": doc.text, "label": [[e.start, e.end, e.label] for e in _by_score(doc, uncertain_first)],
            **{k: v for k, v in doc.fields.items() if k not in reserved}, BOOKKEEPING: doc.bookkeeping()}


def export_tasks(docs: Sequence[ReviewDoc], format: str, uncertain_first: bool = False,
                 lang: str = "en") -> List[Dict[str, Any]]:
    """The documents as one tool's tasks; `lang` is the tokenizer of Prodigy's `tokens`."""
    if format not in FORMATS:
        raise ReviewError(f"unknown review format {format!r}: use one of {', '.join(FORMATS)}")
    docs = _ordered(docs, uncertain_first)
    make: Callable[[ReviewDoc], Dict[str, Any]]
    if format == "label-studio":
        def make(d: ReviewDoc) -> Dict[str, Any]:
            return label_studio_task(d, uncertain_first)
    elif format == "prodigy":
        import spacy

        tokenizer = spacy.blank(lang).tokenizer

        def make(d: ReviewDoc) -> Dict[str, Any]:
            return prodigy_task(d, tokenizer, uncertain_first)
    else:
        def make(d: ReviewDoc) -> Dict[str, Any]:
            return doccano_task(d, uncertain_first)
    return [make(d) for d in docs]


def label_config(labels: Sequence[str]) -> str:
    """Label Studio's labelling config for these labels, each in its palette colour."""
    colors = label_colors(labels)
    items = "\n".join(f"    <Label value={quoteattr(l)} background={quoteattr(c)}/>" for l, c in colors.items())
    return (f'<View>\n  <Labels name="{LS_FROM}" toName="{LS_TO}">\n{items}\n  </Labels>\n'
            f'  <Text name="{LS_TO}" value="$text"/>\n</View>\n')


def write_export(docs: Sequence[ReviewDoc], output: Union[str, Path], format: str,
                 uncertain_first: bool = False, lang: str = "en") -> List[Path]:
    """Write the tasks; returns the files written. Label Studio gets a JSON list (`.json`) and its
    labelling config beside it (`<name>.label_config.xml`); Prodigy and doccano get JSONL."""
    output = Path(output)
    tasks = export_tasks(docs, format, uncertain_first, lang)
    output.parent.mkdir(parents=True, exist_ok=True)
    if format == "label-studio":
        if output.suffix != ".json":
            raise ReviewError(f"a Label Studio export is a JSON list of tasks: name it .json, not {output.name!r}")
        output.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf8")
        config = output.with_name(output.stem + ".label_config.xml")
        labels = list(dict.fromkeys(l for d in docs for l in d.labels))
        config.write_text(label_config(labels), encoding="utf8")
        return [output, config]
    if output.suffix != ".jsonl":
        raise ReviewError(f"a {format} export is JSONL: name it .jsonl, not {output.name!r}")
    with output.open("wb") as fh:
        for task in tasks:
            fh.write(jsonl_line(task))
    return [output]
