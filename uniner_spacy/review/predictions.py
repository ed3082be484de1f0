"""What goes out for review: each document's text, id, fields and predicted entities with scores,
read from `annotate` output (.jsonl, a distillation run's `silver.jsonl` is one) or a `.spacy` DocBin."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..errors import ReviewError
from ..io import ERROR, INDEX, OK, STATUS, jsonl_rows, text_sha256

# the key every export carries for the way back: the document's id, the labels it was reviewed
# for, the predictions as exported and a digest of the text (an edited text is refused on import)
BOOKKEEPING = "uniner"
# the annotate row's own keys; everything else on a row is the document's fields and goes along
_ROW_KEYS = ("text", "ents", "spans", "stats", STATUS, ERROR)


@dataclass(frozen=True)
class Predicted:
    start: int
    end: int
    label: str
    score: Optional[float] = None


@dataclass
class ReviewDoc:
    id: Any
    text: str
    ents: List[Predicted]
    labels: List[str]
    fields: Dict[str, Any] = field(default_factory=dict)

    def uncertainty_key(self) -> float:
        """Documents whose least certain entity scores lowest come first; none at all come last."""
        scores = [e.score if e.score is not None else 1.0 for e in self.ents]
        return min(scores) if scores else 2.0

    def bookkeeping(self) -> Dict[str, Any]:
        return {"id": self.id, "labels": list(self.labels), "text_sha256": text_digest(self.text),
                "predicted": [[e.start, e.end, e.label, e.score] for e in self.ents]}


def text_digest(text: str) -> str:
    return text_sha256(text)[:16]


def read_predictions(path: Union[str, Path], labels: Optional[Sequence[str]] = None) -> List[ReviewDoc]:
    """The documents of an `annotate` .jsonl output (or silver) or a `.spacy` DocBin.

    `labels` is the label set the documents were annotated for; without it, the run record beside
    a .jsonl output (`out.jsonl.run.json`) says, else the labels of the entities found. Rows that
    are not complete (`_status` failed) are refused: reviewing them would teach "no entities".
    """
    path = Path(path)
    if not path.exists():
        raise ReviewError(f"{path} does not exist")
    if path.suffix == ".spacy":
        docs = _from_docbin(path)
    elif path.suffix in (".jsonl", ".ndjson"):
        docs = _from_jsonl(path)
    else:
        raise ReviewError(f"{path}: export reads annotate output (.jsonl) or a DocBin (.spacy), "
                          f"not {path.suffix or 'a file without a suffix'}")
    label_set = list(labels) if labels else _recorded_labels(path)
    seen = list(dict.fromkeys(e.label for d in docs for e in d.ents))
    if label_set:
        unknown = [l for l in seen if l not in label_set]
        if unknown:
            raise ReviewError(f"{path}: entities labelled {unknown} are not among the labels {label_set}")
    for d in docs:
        d.labels = list(label_set or seen)
    return docs


def _recorded_labels(path: Path) -> List[str]:
    record = path.with_name(path.name + ".run.json")
    if not record.exists():
        return []
    try:
        return list(json.loads(record.read_text(encoding="utf8")).get("labels", {}))
    except (ValueError, AttributeError):
        raise ReviewError(f"cannot read the run record {record}; pass the labels instead") from None


def _from_jsonl(path: Path) -> List[ReviewDoc]:
    out: List[ReviewDoc] = []
    incomplete: List[int] = []
    for n, row in jsonl_rows(path):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "ents" not in row:
            raise ReviewError(f"{path}:{n}: not an annotate output row (it needs 'text' and 'ents')")
        if row.get(STATUS, OK) != OK:
            incomplete.append(n)
            continue
        ents = []
        for k, e in enumerate(row["ents"]):
            try:
                ents.append(Predicted(int(e["start"]), int(e["end"]), str(e["label"]), e.get("score")))
            except (KeyError, TypeError, ValueError):
                raise ReviewError(f"{path}:{n}: ents[{k}] needs start, end and label, got {e!r}") from None
        fields = {k: v for k, v in row.items() if k not in _ROW_KEYS}
        doc_id = fields.get("id", row.get(INDEX, len(out)))
        out.append(ReviewDoc(doc_id, row["text"], ents, [], fields))
    if incomplete:
        raise ReviewError(f"{path}: {len(incomplete)} rows are not complete (lines {incomplete[:10]}): rerun the "
                          "annotate command to finish them before exporting")
    return out


def _from_docbin(path: Path) -> List[ReviewDoc]:
    import spacy
    from spacy.tokens import DocBin

    from ..pipeline.component import register_extensions

    register_extensions()  # the scores live in span extensions, stored as the doc's user data
    vocab = spacy.blank("xx").vocab
    out = []
    for i, doc in enumerate(DocBin().from_disk(path).get_docs(vocab)):
        ents = [Predicted(e.start_char, e.end_char, e.label_, e._.uniner_score) for e in doc.ents]
        out.append(ReviewDoc(i, doc.text, ents, [], {}))
    return out
