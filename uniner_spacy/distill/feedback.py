"""Feedback loop: reviewed predictions → training texts and block-list proposals.

Corrections come as JSONL rows
`{"text": ..., "spans": [{"start", "end", "label", "verdict": accepted|rejected|added}]}`,
as a corrected Label Studio, Prodigy or doccano export of `uniner-spacy export` (verdicts from
comparing what the person left with what the model proposed, `uniner_spacy.review`),
or as a spaCy DocBin (`doc.ents` and `doc.spans["accepted"|"added"]` count as
kept, `doc.spans["rejected"]` as rejected). Kept spans become gold entities of
`uniner_spacy.types.AnnotatedText`s for the conversation builder; rejected ones make
their label a negative for that text (answer `[]` unless something else was
kept). Texts rejected again and again for a label become rule snippets
(`filters.labels.<label>.block`) for `uniner.Rules.v1`. No training here.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from ..errors import FeedbackError
from ..io import jsonl_rows
from ..types import AnnotatedText, Entity

VERDICTS = ("accepted", "rejected", "added")


@dataclass(frozen=True)
class Judged:
    start: int
    end: int
    label: str
    verdict: str


@dataclass
class Correction:
    text: str
    spans: List[Judged] = field(default_factory=list)

    def kept(self) -> List[Judged]:
        return [s for s in self.spans if s.verdict != "rejected"]

    def rejected(self) -> List[Judged]:
        return [s for s in self.spans if s.verdict == "rejected"]




def parse_row(row: Any, where: str = "row") -> Correction:
    if not isinstance(row, Mapping):
        raise FeedbackError(f"{where}: expected an object with 'text' and 'spans', got {row!r}")
    text = row.get("text")
    if not isinstance(text, str):
        raise FeedbackError(f"{where}.text: expected a string, got {text!r}")
    spans = row.get("spans", [])
    if not isinstance(spans, list):
        raise FeedbackError(f"{where}.spans: expected a list, got {spans!r}")
    out = []
    for k, s in enumerate(spans):
        w = f"{where}.spans[{k}]"
        if not isinstance(s, Mapping):
            raise FeedbackError(f"{w}: expected an object, got {s!r}")
        missing = [key for key in ("start", "end", "label", "verdict") if key not in s]
        if missing:
            raise FeedbackError(f"{w}: missing {', '.join(missing)}")
        start, end, label, verdict = s["start"], s["end"], s["label"], s["verdict"]
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise FeedbackError(f"{w}: start/end {start!r}/{end!r} must be integers with 0 ≤ start < end ≤ {len(text)}")
        if not isinstance(label, str) or not label.strip():
            raise FeedbackError(f"{w}.label: expected a non-empty string, got {label!r}")
        if verdict not in VERDICTS:
            raise FeedbackError(f"{w}.verdict: expected one of {', '.join(VERDICTS)}, got {verdict!r}")
        out.append(Judged(start, end, label, verdict))
    return Correction(text, out)


def read_corrections(path: Union[str, Path]) -> List[Correction]:
    """JSONL rows, a reviewed Label Studio / Prodigy / doccano export, or a `.spacy` DocBin."""
    from ..review import detect_tool, read_reviewed, to_corrections

    path = Path(path)
    if path.suffix == ".spacy":
        return _read_docbin(path)
    if detect_tool(path) is not None:
        return to_corrections(read_reviewed(path)[0])
    try:
        return [parse_row(row, f"{path}:{n}") for n, row in jsonl_rows(path)]
    except FeedbackError:
        raise
    except ValueError as err:  # a line that is not JSON
        raise FeedbackError(str(err)) from None


def _read_docbin(path: Path) -> List[Correction]:
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("xx").vocab
    out = []
    for doc in DocBin().from_disk(path).get_docs(vocab):
        spans = [Judged(e.start_char, e.end_char, e.label_, "accepted") for e in doc.ents]
        for key in VERDICTS:
            if key in doc.spans:
                spans += [Judged(s.start_char, s.end_char, s.label_, key) for s in doc.spans[key]]
        out.append(Correction(doc.text, list(dict.fromkeys(spans))))
    return out


def to_examples(corrections: Iterable[Correction], labels: Optional[Sequence[str]] = None,
                source: str = "feedback") -> List[AnnotatedText]:
    """Examples for the conversation builder: kept spans are gold; every label asked is a question.

    `labels` is the label set each text was reviewed for; without it, the
    labels seen anywhere in the corrections (rejected ones included, so a
    rejection teaches `[]`).
    """
    corrections = list(corrections)
    all_labels = list(labels) if labels is not None else list(dict.fromkeys(
        s.label for c in corrections for s in c.spans))
    out = []
    for c in corrections:
        kept = {(s.start, s.end, s.label) for s in c.kept()}
        rejected = {(s.start, s.end, s.label) for s in c.rejected()}
        # a later verdict cannot be both: a span both kept and rejected is a reviewer conflict
        ambiguous = kept & rejected
        if ambiguous:
            raise FeedbackError(f"text {c.text[:40]!r}: spans both kept and rejected: {sorted(ambiguous)}")
        ents = [Entity(s, e, l) for s, e, l in sorted(kept)]
        out.append(AnnotatedText(c.text, ents, list(all_labels), source))
    return out


def propose_block_list(corrections: Iterable[Correction], min_count: int = 2,
                       max_accept_rate: float = 0.0) -> Dict[str, Any]:
    """A rules snippet that blocks texts rejected at least `min_count` times for a label.

    A text is proposed only if it was accepted (or added) for that label in at
    most `max_accept_rate` of its verdicts. Returns
    `{"version": 1, "filters": {"labels": {label: {"block": [...]}}}}`, ready to
    merge into a rules file (see `snippet_yaml`).
    """
    rejected: Counter = Counter()
    accepted: Counter = Counter()
    for c in corrections:
        for s in c.spans:
            key = (s.label, " ".join(c.text[s.start : s.end].lower().split()))
            (rejected if s.verdict == "rejected" else accepted)[key] += 1
    labels: Dict[str, List[str]] = {}
    for (label, text), n in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        ok = accepted[(label, text)]
        if n >= min_count and ok <= max_accept_rate * (n + ok):
            labels.setdefault(label, []).append(text)
    return {"version": 1, "filters": {"labels": {l: {"block": sorted(t)} for l, t in sorted(labels.items())}}}


def snippet_yaml(snippet: Mapping[str, Any]) -> str:
    """The snippet as YAML text for a rules file."""
    import yaml

    return yaml.safe_dump(dict(snippet), sort_keys=False, allow_unicode=True)
