"""Corrected exports back in: Label Studio's JSON export, Prodigy's `db-out` JSONL, doccano's JSONL.

Each document becomes a `Reviewed`: its text, id and fields, the spans the person left (gold), the
spans the model had proposed, and whether it was reviewed at all. From there: gold examples (for
`uniner-spacy score`, `distill --gold/--calibrate/--reviewed`), spaCy docs, and feedback corrections
whose verdicts come from comparing the two (kept, removed, added) for `distill/feedback.py`.

Nothing is dropped quietly: an unknown label, overlapping spans, a span whose offsets do not hold its
text, or a text edited in the tool raise a `ReviewError` naming the document; documents nobody
reviewed (or that were skipped) are left out of the gold and counted in the `ImportReport`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import InputError, ReviewError
from ..io import jsonl_line, jsonl_rows
from ..types import AnnotatedText, Entity
from .export import FORMATS, LS_TO
from .predictions import BOOKKEEPING, Predicted, text_digest

ACCEPT, REJECT, IGNORE, UNREVIEWED = "accept", "reject", "ignore", "unreviewed"
Span = Tuple[int, int, str]


@dataclass
class Reviewed:
    id: Any
    text: str
    spans: List[Span]  # what the person left: gold when status is accept
    predicted: List[Predicted]  # what the model proposed, as exported
    labels: List[str]  # the label set the document was reviewed for
    status: str = ACCEPT
    fields: Dict[str, Any] = field(default_factory=dict)
    digest: Optional[str] = None  # the exported text's digest: an edited text is refused


@dataclass
class ImportReport:
    documents: int = 0
    counts: Dict[str, int] = field(default_factory=lambda: {ACCEPT: 0, REJECT: 0, IGNORE: 0, UNREVIEWED: 0})
    several_annotations: int = 0  # Label Studio tasks with more than one annotation: the latest was read

    def lines(self) -> List[str]:
        c = self.counts
        out = [f"{self.documents} documents: {c[ACCEPT]} reviewed and accepted, {c[REJECT]} rejected, "
               f"{c[IGNORE]} skipped in the tool, {c[UNREVIEWED]} not reviewed (left out of the gold)"]
        if self.several_annotations:
            out.append(f"{self.several_annotations} tasks had several annotations: the latest of each was read")
        return out


# ---------------------------------------------------------------- detection


def detect_tool(path: Union[str, Path]) -> Optional[str]:
    """label-studio, prodigy or doccano from a file's first task; None if it is none of them."""
    path = Path(path)
    if path.suffix not in (".json", ".jsonl", ".ndjson") or not path.exists():
        return None
    first = _first_item(path)
    return tool_of(first) if isinstance(first, Mapping) else None


def tool_of(item: Mapping[str, Any]) -> Optional[str]:
    if isinstance(item.get("data"), Mapping) and ("annotations" in item or "predictions" in item):
        return "label-studio"
    if "text" in item and any(k in item for k in ("tokens", "answer", "_input_hash", "_view_id")):
        return "prodigy"
    if "text" in item and ("entities" in item or isinstance(item.get("label"), list)):
        return "doccano"
    return None


def _first_item(path: Path) -> Any:
    with path.open(encoding="utf8", errors="replace") as fh:
        head = fh.read(1 << 20).lstrip()
    decoder = json.JSONDecoder()
    try:
        if head.startswith("["):
            body = head[1:].lstrip()
            return decoder.raw_decode(body)[0] if body.startswith("{") else None
        return decoder.raw_decode(head)[0] if head.startswith("{") else None
    except json.JSONDecodeError:
        return None


# ---------------------------------------------------------------- reading


def read_reviewed(path: Union[str, Path], format: Optional[str] = None,
                  labels: Optional[Sequence[str]] = None) -> Tuple[List[Reviewed], ImportReport]:
    """Every document of a corrected export, checked, with a report of what was reviewed.

    `labels` overrides the label set the export carries (a file written by hand or by another tool
    has none: then any label is taken).
    """
    path = Path(path)
    if not path.exists():
        raise ReviewError(f"{path} does not exist")
    format = format or detect_tool(path)
    if format not in FORMATS:
        raise ReviewError(f"{path}: not a Label Studio, Prodigy or doccano export I can tell; pass the format "
                          f"(one of {', '.join(FORMATS)})")
    reader = {"label-studio": _label_studio, "prodigy": _prodigy, "doccano": _doccano}[format]
    report = ImportReport()
    out = []
    for where, doc in reader(path, report):
        _check(doc, where, labels)
        report.documents += 1
        report.counts[doc.status] += 1
        out.append(doc)
    return out, report


def _rows(path: Path) -> Iterator[Tuple[str, Any]]:
    """(where, item) from a JSON list or JSONL."""
    try:
        if _first_char(path) == "[":
            items = json.loads(path.read_text(encoding="utf8"))
            for i, item in enumerate(items):
                yield f"{path} task {i}", item
            return
        for n, row in jsonl_rows(path):
            yield f"{path}:{n}", row
    except (ValueError, InputError) as err:
        raise ReviewError(f"{path}: not JSON or JSONL ({err})") from None


def _first_char(path: Path) -> str:
    with path.open(encoding="utf8", errors="replace") as fh:
        return fh.read(4096).lstrip()[:1]


def _bookkeeping(item: Mapping[str, Any], where: str) -> Dict[str, Any]:
    bk = item.get(BOOKKEEPING) or {}
    if not isinstance(bk, Mapping):
        raise ReviewError(f"{where}: the {BOOKKEEPING!r} field is not the object the export wrote")
    return dict(bk)


def _predicted(bk: Mapping[str, Any]) -> List[Predicted]:
    return [Predicted(int(s), int(e), str(l), x) for s, e, l, x in bk.get("predicted", [])]


def _text(item: Mapping[str, Any], where: str) -> str:
    text = item.get("text")
    if not isinstance(text, str):
        raise ReviewError(f"{where}: no text (expected a string, got {text!r})")
    return text


def _label_studio(path: Path, report: ImportReport) -> Iterator[Tuple[str, Reviewed]]:
    for where, task in _rows(path):
        if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
            raise ReviewError(f"{where}: not a Label Studio task (no 'data' object)")
        data = dict(task["data"])
        text = _text(data, where)
        bk = _bookkeeping(data, where)
        fields = {k: v for k, v in data.items() if k not in (LS_TO, "text", BOOKKEEPING)}
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        cancelled = any(a.get("was_cancelled") for a in task.get("annotations") or [])
        doc = Reviewed(bk.get("id", task.get("id")), text, [], _predicted(bk), list(bk.get("labels", [])),
                       ACCEPT if done else IGNORE if cancelled else UNREVIEWED, fields, bk.get("text_sha256"))
        if len(done) > 1:
            report.several_annotations += 1
            done.sort(key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
        if done:
            for k, r in enumerate(done[-1].get("result") or []):
                doc.spans.append(_ls_region(r, f"{where} annotation result[{k}]", text))
        yield where, doc


def _ls_region(r: Any, where: str, text: str) -> Span:
    if not isinstance(r, Mapping) or r.get("type") != "labels":
        kind = r.get("type") if isinstance(r, Mapping) else type(r).__name__
        raise ReviewError(f"{where}: a {kind!r} result is not an entity span (the labelling config should hold "
                          "one <Labels> on the text)")
    value = r.get("value") or {}
    names = value.get("labels") or []
    if len(names) != 1:
        raise ReviewError(f"{where}: the region {value.get('text')!r} has {len(names)} labels {names}; give each "
                          "span exactly one")
    try:
        span = (int(value["start"]), int(value["end"]), str(names[0]))
    except (KeyError, TypeError, ValueError):
        raise ReviewError(f"{where}: the region has no character start/end ({value!r})") from None
    start, end = span[0], span[1]
    quoted = value.get("text")
    if quoted is None or text[start:end] == quoted:
        return span
    # a browser counts UTF-16 units: past a character outside the BMP (an emoji) they run ahead
    start16, end16 = _from_utf16(text, start), _from_utf16(text, end)
    if start16 is not None and end16 is not None and text[start16:end16] == quoted:
        return (start16, end16, span[2])
    raise ReviewError(f"{where}: the region says {quoted!r} but the text at {start}-{end} is "
                      f"{text[start:end]!r}, counted in characters or in UTF-16 units")


def _from_utf16(text: str, offset: int) -> Optional[int]:
    """The character offset of a UTF-16 unit offset into `text`; None inside a surrogate pair or past the end."""
    units = 0
    for i, char in enumerate(text):
        if units == offset:
            return i
        if units > offset:
            return None
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text) if units == offset else None


def _text_rows(path: Path, what: str) -> Iterator[Tuple[str, Mapping[str, Any], str, Dict[str, Any]]]:
    """(where, row, text, bookkeeping) of a JSONL export whose rows hold the text at the top."""
    for where, row in _rows(path):
        if not isinstance(row, Mapping):
            raise ReviewError(f"{where}: not {what}")
        yield where, row, _text(row, where), _bookkeeping(row, where)


def _prodigy(path: Path, report: ImportReport) -> Iterator[Tuple[str, Reviewed]]:
    for where, row, text, bk in _text_rows(path, "a Prodigy task object"):
        answer = row.get("answer", UNREVIEWED)
        if answer not in (ACCEPT, REJECT, IGNORE, UNREVIEWED):
            raise ReviewError(f"{where}: answer {answer!r} is none of accept, reject, ignore")
        meta = dict(row.get("meta") or {})
        doc_id = bk.get("id", meta.pop("id", None))
        meta.pop("id", None)
        meta.pop("min_score", None)
        tokens = row.get("tokens") or []
        spans: List[Span] = []
        for k, s in enumerate(row.get("spans") or []):
            w = f"{where} spans[{k}]"
            try:
                start, end, label = int(s["start"]), int(s["end"]), str(s["label"])
            except (KeyError, TypeError, ValueError):
                raise ReviewError(f"{w}: a span needs start, end and label, got {s!r}") from None
            _check_tokens(s, tokens, start, end, w)
            spans.append((start, end, label))
        yield where, Reviewed(doc_id, text, spans, _predicted(bk), list(bk.get("labels", [])), answer, meta,
                              bk.get("text_sha256"))


def _check_tokens(span: Mapping[str, Any], tokens: Sequence[Mapping[str, Any]], start: int, end: int,
                  where: str) -> None:
    """Prodigy's token indices, where given, must point at the span's characters (`token_end` inclusive)."""
    if "token_start" not in span or not tokens:
        return
    try:
        first, last = tokens[int(span["token_start"])], tokens[int(span["token_end"])]
    except (IndexError, KeyError, TypeError, ValueError):
        raise ReviewError(f"{where}: token_start/token_end {span.get('token_start')}/{span.get('token_end')} are "
                          f"not tokens of the task ({len(tokens)} tokens)") from None
    if (first.get("start"), last.get("end")) != (start, end):
        raise ReviewError(f"{where}: characters {start}-{end} but tokens {span['token_start']}-{span['token_end']} "
                          f"cover {first.get('start')}-{last.get('end')}")


def _doccano(path: Path, report: ImportReport) -> Iterator[Tuple[str, Reviewed]]:
    for where, row, text, bk in _text_rows(path, "a doccano row object"):
        spans: List[Span] = []
        if "entities" in row:  # doccano's export when the project has relations
            for k, e in enumerate(row["entities"] or []):
                try:
                    spans.append((int(e["start_offset"]), int(e["end_offset"]), str(e["label"])))
                except (KeyError, TypeError, ValueError):
                    raise ReviewError(f"{where} entities[{k}]: needs start_offset, end_offset, label") from None
        else:
            for k, e in enumerate(row.get("label") or []):
                if not (isinstance(e, (list, tuple)) and len(e) == 3):
                    raise ReviewError(f"{where} label[{k}]: expected [start, end, label], got {e!r} (a text "
                                      "classification project's labels are no spans)")
                spans.append((int(e[0]), int(e[1]), str(e[2])))
        reserved = ("text", "label", "entities", "relations", "id", "Comments", "comments", BOOKKEEPING)
        fields = {k: v for k, v in row.items() if k not in reserved}
        # doccano's export has no answer: a row is as reviewed as the person left it
        yield where, Reviewed(bk.get("id", row.get("id")), text, spans, _predicted(bk), list(bk.get("labels", [])),
                              ACCEPT, fields, bk.get("text_sha256"))


# ---------------------------------------------------------------- checks


def _check(doc: Reviewed, where: str, labels: Optional[Sequence[str]]) -> None:
    name = f"{where} (document {doc.id!r})"
    if doc.digest is not None and text_digest(doc.text) != doc.digest:
        raise ReviewError(f"{name}: the text was edited in the tool (now {doc.text[:60]!r}); its spans no longer "
                          "line up with what was exported. Undo the edit, or annotate the edited text anew")
    allowed = list(labels) if labels else doc.labels
    for start, end, label in doc.spans:
        if not 0 <= start < end <= len(doc.text):
            raise ReviewError(f"{name}: span {start}-{end} ({label}) lies outside the text "
                              f"({len(doc.text)} characters)")
        if allowed and label not in allowed:
            raise ReviewError(f"{name}: unknown label {label!r} on {doc.text[start:end]!r}; the document was "
                              f"exported for {allowed} (pass the labels to allow others)")
    clean = sorted(set(doc.spans))  # the same span drawn twice is one span
    for a, b in zip(clean, clean[1:]):
        if b[0] < a[1]:
            raise ReviewError(f"{name}: overlapping spans {doc.text[a[0]:a[1]]!r} ({a[0]}-{a[1]}, {a[2]}) and "
                              f"{doc.text[b[0]:b[1]]!r} ({b[0]}-{b[1]}, {b[2]}); keep one of them in the tool")
    doc.spans = clean
    if labels:
        doc.labels = list(dict.fromkeys(labels))
    elif not doc.labels:
        doc.labels = list(dict.fromkeys(l for _, _, l in clean))


# ---------------------------------------------------------------- conversions


def to_examples(docs: Sequence[Reviewed], source: str = "review") -> List[AnnotatedText]:
    """Gold examples of the accepted documents (every label of the document's set is asked)."""
    return [AnnotatedText(d.text, [Entity(s, e, l) for s, e, l in d.spans], list(d.labels), source)
            for d in docs if d.status == ACCEPT]


def to_corrections(docs: Sequence[Reviewed]):
    """Feedback corrections: a proposed span left as it was is accepted, one removed or relabelled is
    rejected, one the person drew is added; a document rejected as a whole rejects every span in it."""
    from ..distill.feedback import Correction, Judged

    out = []
    for d in docs:
        if d.status == ACCEPT:
            proposed = {(p.start, p.end, p.label) for p in d.predicted}
            kept = set(d.spans)
            spans = ([Judged(s, e, l, "accepted") for s, e, l in sorted(proposed & kept)]
                     + [Judged(s, e, l, "rejected") for s, e, l in sorted(proposed - kept)]
                     + [Judged(s, e, l, "added") for s, e, l in sorted(kept - proposed)])
        elif d.status == REJECT:
            spans = [Judged(s, e, l, "rejected") for s, e, l in d.spans]
        else:
            continue
        out.append(Correction(d.text, spans))
    return out


def to_docs(docs: Sequence[Reviewed], nlp) -> list:
    """spaCy docs of the accepted documents, their spans as `doc.ents` and every other token outside."""
    out = []
    for d in docs:
        if d.status != ACCEPT:
            continue
        doc = nlp.make_doc(d.text)
        ents = []
        for s, e, l in d.spans:
            span = doc.char_span(s, e, label=l)
            if span is None:
                raise ReviewError(f"document {d.id!r}: the span {d.text[s:e]!r} ({s}-{e}, {l}) does not start and end "
                                  "on a token; trim it to whole words in the tool")
            ents.append(span)
        doc.ents = ents
        doc.user_data["uniner_review_id"] = d.id
        out.append(doc)
    return out


def training_docs(path: Union[str, Path], labels: Sequence[str],
                  lang: str = "en") -> Tuple[list, Optional[ImportReport]]:
    """Reviewed documents to train on (`distill --reviewed`): a corrected export's accepted documents,
    or the docs of a gold DocBin (`import --gold`), refused if they use a label not in `labels`."""
    import spacy

    path = Path(path)
    nlp = spacy.blank(lang)
    if path.suffix != ".spacy":
        docs, report = read_reviewed(path, labels=labels)
        return to_docs(docs, nlp), report
    from spacy.tokens import DocBin

    if not path.exists():
        raise ReviewError(f"{path} does not exist")
    gold = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    unknown = sorted({e.label_ for d in gold for e in d.ents} - set(labels))
    if unknown:
        raise ReviewError(f"{path} has labels that were not asked for: {unknown} (asked: {list(labels)})")
    return gold, None


def write_reviewed(docs: Sequence[Reviewed], output: Union[str, Path], lang: str = "en") -> Path:
    """Gold as a DocBin (`.spacy`: `score --gold`, `distill --gold/--calibrate/--reviewed`), or
    feedback corrections as JSONL (`.jsonl`, the rows `distill/feedback.py` reads)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".spacy":
        import spacy
        from spacy.tokens import DocBin

        DocBin(docs=to_docs(docs, spacy.blank(lang)), store_user_data=True).to_disk(output)
    elif output.suffix == ".jsonl":
        ids = [d.id for d in docs if d.status in (ACCEPT, REJECT)]
        with output.open("wb") as fh:
            for doc_id, c in zip(ids, to_corrections(docs)):
                fh.write(jsonl_line({"id": doc_id, "text": c.text, "spans": [
                    {"start": s.start, "end": s.end, "label": s.label, "verdict": s.verdict} for s in c.spans]}))
    else:
        raise ReviewError("write reviewed documents to .spacy (gold) or .jsonl (feedback corrections), "
                          f"not {output.name!r}")
    return output


def import_review(path: Union[str, Path], *, gold: Optional[Union[str, Path]] = None,
                  corrections: Optional[Union[str, Path]] = None, block_list: Optional[Union[str, Path]] = None,
                  format: Optional[str] = None, labels: Optional[Sequence[str]] = None, min_count: int = 2,
                  lang: str = "en") -> ImportReport:
    """A corrected export read back and written where it is used: `gold` (.spacy or .jsonl of gold
    rows), `corrections` (feedback JSONL) and `block_list` (a rules snippet of the texts rejected at
    least `min_count` times for a label)."""
    from ..distill.feedback import propose_block_list, snippet_yaml

    docs, report = read_reviewed(path, format, labels)
    if gold is not None:
        gold = Path(gold)
        if gold.suffix != ".spacy":
            raise ReviewError(f"the gold goes to a DocBin (.spacy), not {gold.name!r}")
        write_reviewed(docs, gold, lang)
    if corrections is not None:
        corrections = Path(corrections)
        if corrections.suffix != ".jsonl":
            raise ReviewError(f"feedback corrections are JSONL (.jsonl), not {corrections.name!r}")
        write_reviewed(docs, corrections, lang)
    if block_list is not None:
        Path(block_list).parent.mkdir(parents=True, exist_ok=True)
        Path(block_list).write_text(snippet_yaml(propose_block_list(to_corrections(docs), min_count)),
                                    encoding="utf8")
    return report
