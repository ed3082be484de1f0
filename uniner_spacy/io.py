"""Texts in, docs out, JSONL: one place for reading input and writing results."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Tuple, Union

from .errors import InputError


def text_sha256(text: str) -> str:
    """The hex SHA-256 of `text`'s UTF-8: the one digest behind cache keys, checksums and text ids."""
    return hashlib.sha256(text.encode("utf8", "surrogatepass")).hexdigest()


def jsonl_rows(path: Union[str, Path], on_bad: Optional[Callable[[str], None]] = None) -> Iterator[Tuple[int, Any]]:
    """(line number, parsed row) for each non-blank line.

    A line that is not JSON raises ValueError naming the file and line; with
    `on_bad` the message goes there instead and the line is skipped (a raw
    corpus, where one bad line should not stop a sample).
    """
    with Path(path).open(encoding="utf8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as err:
                message = f"{path}:{n}: not JSON ({err})"
                if on_bad is None:
                    raise InputError(message) from None
                on_bad(message + ", skipped")


def jsonl_line(row: Any) -> bytes:
    """One JSONL line, always writable: UTF-8 as it reads, or ASCII escapes where the text holds
    what UTF-8 cannot encode (a lone surrogate from a JSONL `\\ud800`), so one odd text never
    stops a run that writes it."""
    line = json.dumps(row, ensure_ascii=False)
    try:
        return (line + "\n").encode("utf8")
    except UnicodeEncodeError:
        return (json.dumps(row) + "\n").encode("ascii")


def read_texts(path: Path, text_field: str = "text") -> Iterator[Tuple[str, dict]]:
    """(text, meta) from text lines, JSONL, or a folder of .txt files, in a stable order."""
    if path.is_dir():
        for f in sorted(path.rglob("*.txt")):
            yield f.read_text(encoding="utf8"), {"file": str(f.relative_to(path))}
        return
    if path.suffix in (".jsonl", ".ndjson"):
        for n, row in jsonl_rows(path):
            if not isinstance(row, dict) or text_field not in row:
                raise InputError(f"{path}:{n} has no '{text_field}' field (choose it with --text-field)")
            yield row[text_field], {k: v for k, v in row.items() if k != text_field}
        return
    with path.open(encoding="utf8") as fh:
        for n, line in enumerate(fh):
            yield line.rstrip("\n"), {"line": n + 1}


# a batch run's bookkeeping keys on each output row, Prodigy-style (runs.py, docs/batch-runs.md)
INDEX, STATUS, ERROR = "_index", "_status", "_error"
# "invalid": an input row no rerun can annotate (its text is not a string, or too long), unlike the others
OK, FAILED, SKIPPED, INVALID = "ok", "failed", "skipped", "invalid"
STATUSES = (OK, FAILED, SKIPPED, INVALID)


def doc_to_json(doc, meta: dict, spans_key: str = "uniner") -> dict:
    """One output row. Candidate scores come from the span group's `scores` (spancat's convention),
    else from each candidate's own `_.uniner_score`."""

    def ent(s, score) -> dict:
        return {"start": s.start_char, "end": s.end_char, "text": s.text, "label": s.label_, "score": score}

    group = doc.spans.get(spans_key, [])
    scores = getattr(group, "attrs", {}).get("scores") or [s._.uniner_score for s in group]
    return {"text": doc.text, **meta, "ents": [ent(e, e._.uniner_score) for e in doc.ents],
            "spans": [ent(s, x) for s, x in zip(group, scores)], "stats": doc._.uniner_stats}
