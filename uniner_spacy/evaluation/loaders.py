"""Read every NER data format we meet into `AnnotatedText`s with character offsets.

Each reader turns one file into `_Record`s carrying raw tags; `load` then maps
tags to natural names (labels.py) and fills each example's full label set, so
absent types are true negatives. Token formats are joined with single spaces,
as the official UniNER zero-shot files are (`classifier s ,`).

Formats whose gold is mention strings rather than offsets (UniNER
conversations, SLIMER) are located in the text; a mention that cannot be found
is kept in `Loaded.unlocated` rather than dropped, so the string protocol can
still count it.
"""
from __future__ import annotations

import ast
import csv
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import ConfigError, InputError
from ..io import jsonl_rows
from ..pipeline.align import find_mentions
from ..types import AnnotatedText, Entity
from .labels import dataset_labels, make_label_mapper

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
Span = Tuple[int, int, str]  # [start, end) and raw label

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class _Record:
    """One text as a reader sees it: raw labels, before name mapping."""

    text: str
    spans: List[Span]
    labels: Optional[List[str]] = None  # per-text label set (None: the file's set)
    unlocated: List[Tuple[str, str]] = field(default_factory=list)  # (raw label, mention)


@dataclass
class Loaded:
    """`load`'s result with what was lost on the way, so nothing disappears silently."""

    examples: List[AnnotatedText]
    format: str
    source: str
    unlocated: List[Tuple[int, str, str]] = field(default_factory=list)  # (example idx, label, mention)


# ---------------------------------------------------------------- tags → spans


_PREFIXED = re.compile(r"^([BIESLU])-(.+)$")


def bio_spans(tags: Sequence[str]) -> List[Span]:
    """Token spans [start, end) from BIO/IOB1/BIOES/IO tags, leniently.

    An `I-X` that does not continue an open `X` opens a new span (IOB1 files and
    WikiNEuRal's ~440 breaks); an unprefixed tag `X` is IO: equal neighbours join.
    """
    spans: List[Span] = []
    start, label = -1, ""

    def close(i: int) -> None:
        nonlocal start, label
        if start >= 0:
            spans.append((start, i, label))
        start, label = -1, ""

    for i, tag in enumerate(tags):
        tag = tag.strip()
        if tag in ("", "O", "_"):
            close(i)
            continue
        m = _PREFIXED.match(tag)
        prefix, name = (m.group(1), m.group(2)) if m else ("I", tag)
        if prefix in ("B", "S", "U") or name != label:
            close(i)
            start, label = i, name
        if prefix in ("E", "S", "L", "U"):
            close(i + 1)
    close(len(tags))
    return spans


def join_tokens(tokens: Sequence[str], spans: Iterable[Span]) -> Tuple[str, List[Span]]:
    """Join tokens with single spaces; token spans → character spans."""
    starts: List[int] = []
    pos = 0
    for tok in tokens:
        starts.append(pos)
        pos += len(tok) + 1
    text = " ".join(tokens)
    out = []
    for s, e, label in spans:
        if 0 <= s < e <= len(tokens):
            out.append((starts[s], starts[e - 1] + len(tokens[e - 1]), label))
    return text, out


def _tokens_record(tokens: Sequence[str], token_spans: Iterable[Span],
                   labels: Optional[List[str]] = None) -> _Record:
    text, spans = join_tokens(tokens, token_spans)
    return _Record(text, spans, labels)


SENTENCE_END = None  # what a token-a-row reader yields where a sentence ends


def _sentences(rows: Iterable[Optional[Tuple[str, str]]]) -> Iterator[_Record]:
    """(token, tag) rows, with `SENTENCE_END` between sentences → one record per sentence.

    Every token-a-row format (CoNLL, HIPE, FiNER CSV) differs only in how it
    says where a sentence ends; the buffering is here once. Empty sentences
    (two ends in a row) give nothing.
    """
    tokens: List[str] = []
    tags: List[str] = []
    for row in chain(rows, [SENTENCE_END]):
        if row is SENTENCE_END:
            if tokens:
                yield _tokens_record(tokens, bio_spans(tags))
            tokens, tags = [], []
            continue
        tokens.append(row[0])
        tags.append(row[1])


def _locate(text: str, answers: Iterable[Tuple[str, str]]) -> Tuple[List[Span], List[Tuple[str, str]]]:
    """(label, mention) pairs → character spans, and the pairs not found."""
    spans: List[Span] = []
    missing: List[Tuple[str, str]] = []
    for label, mention in answers:
        found = find_mentions(text, mention)
        if not found:
            missing.append((label, mention))
        spans.extend((s, e, label) for s, e in found)
    return spans, missing


def _json_list(answer: str) -> List[str]:
    """Mention strings of a gold answer; a malformed answer gives []."""
    try:
        items = json.loads(answer)
    except (json.JSONDecodeError, TypeError):
        m = re.match(r"\[(.*?)\]", answer or "")
        try:
            items = json.loads(m.group()) if m else []
        except json.JSONDecodeError:
            items = []
    if not isinstance(items, list):
        return []
    return [x for x in items if isinstance(x, str)]


# ---------------------------------------------------------------- readers


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace", newline=None) as fh:
        for line in fh:
            yield line.rstrip("\r\n")


_LANG_PREFIX = re.compile(r"^[a-z]{2,3}:")


def read_bio(path: Path, *, token_col: int = 0, tag_col: int = 1, sep: Optional[str] = "\t",
             lang_prefix: bool = False) -> Iterator[_Record]:
    """One-token-a-line files (CoNLL family); blank, `-DOCSTART-` and `# id` lines split sentences.

    `sep=None` splits on any white space (token SPACE tag, CoNLL 4-column);
    `lang_prefix` strips WikiANN's `en:` in front of every token.
    """
    return _sentences(_bio_rows(path, token_col, tag_col, sep, lang_prefix))


def _bio_rows(path: Path, token_col: int, tag_col: int, sep: Optional[str],
              lang_prefix: bool) -> Iterator[Optional[Tuple[str, str]]]:
    for line in _lines(path):
        if not line.strip() or line.startswith("-DOCSTART-") or line.startswith("# id "):
            yield SENTENCE_END
            continue
        fields = line.split(sep) if sep else line.split()
        if len(fields) < 2:
            continue
        token = fields[token_col]
        if lang_prefix:
            token = _LANG_PREFIX.sub("", token, count=1)
        yield token, fields[tag_col]


def read_hipe(path: Path, *, tag_column: str = "NE-COARSE-LIT") -> Iterator[_Record]:
    """HIPE-2022 TSV: header row, `#` metadata lines; sentences end at `EndOfSentence`."""
    return _sentences(_hipe_rows(path, tag_column))


def _hipe_rows(path: Path, tag_column: str) -> Iterator[Optional[Tuple[str, str]]]:
    header: List[str] = []
    for line in _lines(path):
        if line.startswith("TOKEN\t"):
            header = line.split("\t")
            continue
        if not line.strip() or line.startswith("#"):
            yield SENTENCE_END
            continue
        fields = line.split("\t")
        row = dict(zip(header, fields))
        yield row.get("TOKEN", fields[0]), row.get(tag_column, "O")
        if "EndOfSentence" in row.get("MISC", ""):
            yield SENTENCE_END


_FINER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def read_finer_csv(path: Path) -> Iterator[_Record]:
    """FiNER-ORD: one token a row; (doc_idx, sent_idx) changes split sentences."""
    return _sentences(_finer_rows(path))


def _finer_rows(path: Path) -> Iterator[Optional[Tuple[str, str]]]:
    key = None
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            row_key = (row["doc_idx"], row["sent_idx"])
            if row_key != key:
                yield SENTENCE_END
            key = row_key
            yield row["gold_token"], _FINER_TAGS[int(float(row["gold_label"]))]


def read_ie_json(path: Path) -> Iterator[_Record]:
    """IE_INSTRUCTIONS JSON: sentence + entities with [start, end) character `pos`."""
    for item in json.loads(path.read_text(encoding="utf-8")):
        spans = [(e["pos"][0], e["pos"][1], e["type"]) for e in item.get("entities", [])]
        yield _Record(item["sentence"], spans)


_TEXT_TURN = re.compile(r"^(?:Dataset: (.*?) )?Text: (.*)$", re.S)
_QUESTION = re.compile(r"^What describes (.*) in the text\?$", re.S)


def _conversation_answers(turns: Sequence[Mapping[str, str]]) -> Tuple[str, List[Tuple[str, str]], List[str]]:
    """(passage, [(type, mention)], types asked) from one UniNER conversation."""
    m = _TEXT_TURN.match(turns[0]["value"])
    text = m.group(2) if m else turns[0]["value"]
    answers: List[Tuple[str, str]] = []
    asked: List[str] = []
    for q, a in zip(turns[2::2], turns[3::2]):
        qm = _QUESTION.match(q["value"].strip())
        if not qm:
            continue
        asked.append(qm.group(1))
        answers.extend((qm.group(1), mention) for mention in _json_list(a["value"]))
    return text, answers, asked


def read_conversation(path: Path) -> Iterator[_Record]:
    """UniNER conversations (official eval files: one item per (text, type) query).

    Consecutive items on the same text are merged into one record until a type
    repeats, so a duplicated sentence stays two records and query counts match.
    """
    raw = path.read_text(encoding="utf-8").strip()
    items = json.loads(raw) if raw.startswith("[") else (item for _, item in jsonl_rows(path))
    text: Optional[str] = None
    answers: List[Tuple[str, str]] = []
    asked: List[str] = []

    def flush() -> Iterator[_Record]:
        if text is not None:
            spans, missing = _locate(text, answers)
            yield _Record(text, spans, list(asked), missing)

    for item in items:
        t, a, q = _conversation_answers(item["conversations"])
        if t != text or set(q) & set(asked):
            yield from flush()
            text, answers, asked = t, [], []
        answers.extend(a)
        asked.extend(q)
    yield from flush()


def read_slimer(path: Path) -> Iterator[_Record]:
    """SLIMER JSONL: one (passage, tagName) question a line, grouped per passage."""
    groups: Dict[str, Tuple[List[Tuple[str, str]], List[str]]] = {}
    for _, item in jsonl_rows(path):
        answers, asked = groups.setdefault(item["input"], ([], []))
        if item["tagName"] not in asked:
            asked.append(item["tagName"])
        answers.extend((item["tagName"], m) for m in _json_list(item["output"]))
    for text, (answers, asked) in groups.items():
        spans, missing = _locate(text, answers)
        yield _Record(text, spans, asked, missing)


def _gliner_record(tokens: Sequence[str], ner: Iterable[Sequence], per_text: bool) -> _Record:
    spans = [(int(s), int(e) + 1, str(t)) for s, e, t in ner]
    labels = list(dict.fromkeys(t for _, _, t in spans)) if per_text else None
    return _tokens_record(tokens, spans, labels)


def read_gliner(path: Path, *, per_text_labels: bool = True) -> Iterator[_Record]:
    """GLiNER JSON: tokenized_text + ner [start, end_inclusive, type].

    Pile-NER-style passages are labelled only for the types they mention, so
    each text's label set is its own (`per_text_labels`), not the file's.
    """
    for item in json.loads(path.read_text(encoding="utf-8")):
        yield _gliner_record(item["tokenized_text"], item.get("ner", []), per_text_labels)


def read_gliner_csv(path: Path, *, per_text_labels: bool = False) -> Iterator[_Record]:
    """GLiNER-style CSV (textile set): both columns are Python list literals."""
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            tokens = ast.literal_eval(row["tokenized_text"])
            ner = ast.literal_eval(row["ner"]) if row.get("ner") else []
            yield _gliner_record(tokens, ner, per_text_labels)


def read_w2ner(path: Path) -> Iterator[_Record]:
    """W2NER JSON (GENIA): token list + ner index lists; a gap is covered, not split."""
    for item in json.loads(path.read_text(encoding="utf-8")):
        spans = [(min(e["index"]), max(e["index"]) + 1, e["type"]) for e in item.get("ner", []) if e["index"]]
        yield _tokens_record(item["sentence"], spans)


def read_dygie(path: Path) -> Iterator[_Record]:
    """DyGIE/SciERC JSONL: one abstract a line, ner offsets count over the whole document."""
    for _, doc in jsonl_rows(path):
        offset = 0
        for tokens, ner in zip(doc["sentences"], doc.get("ner", [[]] * len(doc["sentences"]))):
            spans = [(s - offset, e - offset + 1, t) for s, e, t in ner]
            yield _tokens_record(tokens, spans)
            offset += len(tokens)


def read_presidio(path: Path) -> Iterator[_Record]:
    """Presidio synthetic JSON: full_text + spans with character positions."""
    for item in json.loads(path.read_text(encoding="utf-8")):
        spans = [(s["start_position"], s["end_position"], s["entity_type"]) for s in item.get("spans", [])]
        yield _Record(item["full_text"], spans)


_PAIR = re.compile(r"\((\d+),\s*(\d+)\)")


def read_tasteset(path: Path) -> Iterator[_Record]:
    """TASTEset CSV: ingredients text + JSON entities; a split entity is covered whole."""
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            spans = []
            for ent in json.loads(row["ingredients_entities"]):
                pairs = [(int(a), int(b)) for a, b in _PAIR.findall(ent["span"])]
                if pairs:
                    spans.append((min(p[0] for p in pairs), max(p[1] for p in pairs), ent["type"]))
            yield _Record(row["ingredients"], spans)


def read_fewnerd_episodes(path: Path) -> Iterator[_Record]:
    """Few-NERD episodes: support + query sentences, labelled only for the episode's types."""
    for _, episode in jsonl_rows(path):
        types = list(episode["types"])
        for part in ("support", "query"):
            for words, tags in zip(episode[part]["word"], episode[part]["label"]):
                yield _tokens_record(words, bio_spans(tags), types)


def read_docbin(path: Path) -> Iterator[_Record]:
    """spaCy DocBin: `doc.ents` with their character offsets."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    for doc in DocBin().from_disk(path).get_docs(Vocab()):
        yield _Record(doc.text, [(e.start_char, e.end_char, e.label_) for e in doc.ents])


def read_reviewed_export(path: Path, *, tool: str) -> Iterator[_Record]:
    """A corrected Label Studio / Prodigy / doccano export: its reviewed documents (uniner_spacy.review)."""
    from ..review import read_reviewed, to_examples

    for eg in to_examples(read_reviewed(path, tool)[0]):
        yield _Record(eg.text, [(e.start, e.end, e.label) for e in eg.entities], list(eg.labels))


READERS: Dict[str, Callable[[Path], Iterable[_Record]]] = {
    "bio": read_bio,  # token TAB tag (tag col 2; extra columns ignored)
    "bio_tag_first": partial(read_bio, token_col=1, tag_col=0),  # MIT train.txt
    "bio_lang_prefix": partial(read_bio, lang_prefix=True),  # WikiANN `en:token`
    "bio_indexed": partial(read_bio, token_col=1, tag_col=2),  # WikiNEuRal idx TAB token TAB tag
    "bio_tag_last": partial(read_bio, tag_col=-1),  # AnEM token TAB start TAB end TAB tag
    "conll_space": partial(read_bio, sep=None, tag_col=-1),  # token [POS chunk] tag, space-separated
    "hipe": read_hipe,
    "finer_csv": read_finer_csv,
    "ie_json": read_ie_json,
    "conversation": read_conversation,
    "slimer": read_slimer,
    "gliner": read_gliner,
    "gliner_csv": read_gliner_csv,
    "w2ner": read_w2ner,
    "dygie": read_dygie,
    "presidio": read_presidio,
    "tasteset": read_tasteset,
    "fewnerd_episodes": read_fewnerd_episodes,
    "docbin": read_docbin,
    "label_studio": partial(read_reviewed_export, tool="label-studio"),  # corrected review exports
    "prodigy": partial(read_reviewed_export, tool="prodigy"),
    "doccano": partial(read_reviewed_export, tool="doccano"),
}
FORMATS = tuple(READERS)
# Formats whose files already use natural type names: keep them as they are.
NATURAL_NAME_FORMATS = frozenset({"ie_json", "conversation", "slimer", "label_studio", "prodigy", "doccano"})


# ---------------------------------------------------------------- detection


_TAG = re.compile(r"^(O|[BIESLU]-\S+)$")


def _first_json_item(path: Path) -> Optional[dict]:
    """The first object of a JSON array or JSONL file, reading only the head if possible."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        head = fh.read(1 << 20)
    stripped = head.lstrip()
    decoder = json.JSONDecoder()
    try:
        if stripped.startswith("["):
            body = stripped[1:].lstrip()
            return decoder.raw_decode(body)[0] if body.startswith("{") else None
        if stripped.startswith("{"):
            return decoder.raw_decode(stripped)[0]
    except json.JSONDecodeError:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data[0] if isinstance(data, list) and data else data
    return None


def _json_format(item: Optional[dict]) -> Optional[str]:
    if not isinstance(item, dict):
        return None
    keys = set(item)
    if "conversations" in keys:
        return "conversation"
    if {"input", "tagName"} <= keys:
        return "slimer"
    if {"support", "query"} <= keys:
        return "fewnerd_episodes"
    if {"sentences", "ner"} <= keys:
        return "dygie"
    if "tokenized_text" in keys:
        return "gliner"
    if {"full_text", "spans"} <= keys:
        return "presidio"
    if "sentence" in keys:
        return "w2ner" if isinstance(item["sentence"], list) else "ie_json"
    from ..review import reviewed

    tool = reviewed.tool_of(item)  # a corrected review export (docs/review.md)
    return tool.replace("-", "_") if tool else None


def _token_format(lines: List[str]) -> str:
    """Which one-token-a-line layout, from the first non-blank lines."""
    rows = [ln for ln in lines if ln.strip() and not ln.startswith(("-DOCSTART-", "# id "))][:200]
    if not rows:
        raise InputError("no token lines")
    tabbed = [r.split("\t") for r in rows if "\t" in r]
    if len(tabbed) < len(rows) * 0.9:
        return "conll_space"

    def share(pred: Callable[[List[str]], bool]) -> float:
        return sum(1 for f in tabbed if pred(f)) / len(tabbed)

    if share(lambda f: bool(_LANG_PREFIX.match(f[0]))) > 0.9:
        return "bio_lang_prefix"
    if share(lambda f: len(f) == 3 and f[0].isdigit()) > 0.9:
        return "bio_indexed"
    if share(lambda f: bool(_TAG.match(f[0]))) > 0.9 and share(lambda f: bool(_TAG.match(f[1]))) < 0.5:
        return "bio_tag_first"
    if share(lambda f: bool(_TAG.match(f[1]))) < 0.5 and share(lambda f: bool(_TAG.match(f[-1]))) > 0.5:
        return "bio_tag_last"  # AnEM: token TAB start TAB end TAB tag
    return "bio"  # tag in column 2, extra columns ignored; IO tags ("O" or a bare type) too


def detect_format(path: PathLike) -> str:
    """The format name of a data file, from its extension and its first lines."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".spacy":
        return "docbin"
    if suffix in (".json", ".jsonl"):
        fmt = _json_format(_first_json_item(path))
        if fmt:
            return fmt
        raise InputError(f"Cannot tell the JSON format of {path}: pass format= (one of {', '.join(FORMATS)})")
    with path.open(encoding="utf-8", errors="replace", newline=None) as fh:
        head = [fh.readline().rstrip("\r\n") for _ in range(400)]
    if suffix == ".csv" or head[0].count(",") >= 1 and "\t" not in head[0]:
        columns = set(next(csv.reader([head[0]]), []))
        if {"gold_label", "gold_token"} <= columns:
            return "finer_csv"
        if "ingredients_entities" in columns:
            return "tasteset"
        if {"tokenized_text", "ner"} <= columns:
            return "gliner_csv"
    if head[0].startswith("TOKEN\tNE-COARSE-LIT"):
        return "hipe"
    try:
        return _token_format(head)
    except ValueError:
        raise InputError(f"Cannot tell the format of {path}: pass format= (one of {', '.join(FORMATS)})") from None


# ---------------------------------------------------------------- load


def _labels_beside(path: Path) -> List[str]:
    """A label list shipped next to the data (`labels.json`, `labels.txt`), raw names."""
    js, txt = path.parent / "labels.json", path.parent / "labels.txt"
    if js.exists():
        return [str(x) for x in json.loads(js.read_text(encoding="utf-8"))]
    if txt.exists():
        names = (_PREFIXED.sub(r"\2", ln.strip()) for ln in _lines(txt))
        return list(dict.fromkeys(n for n in names if n and n != "O"))
    return []


def source_name(path: PathLike) -> str:
    """The data set a file belongs to: its folder's name (`crossner_ai`, `conll2003`)."""
    return Path(path).resolve().parent.name


def _to_examples(records: Iterable[_Record], mapper: Callable[[str], Optional[str]],
                 file_labels: List[str], source: str) -> Loaded:
    records = list(records)
    if not file_labels or any(r.labels is None for r in records):
        observed = (lab for r in records if r.labels is None for _, _, lab in r.spans)
        file_labels = list(dict.fromkeys([*file_labels, *observed]))

    def names(raw: Iterable[str]) -> List[str]:
        return list(dict.fromkeys(n for n in map(mapper, raw) if n))

    shared = names(file_labels)
    loaded = Loaded([], "", source)
    for i, rec in enumerate(records):
        ents = sorted({Entity(s, e, n) for s, e, lab in rec.spans
                       if 0 <= s < e <= len(rec.text) and (n := mapper(lab))},
                      key=lambda x: (x.start, x.end, x.label))
        labels = shared if rec.labels is None else names([*rec.labels, *(lab for _, _, lab in rec.spans)])
        loaded.examples.append(AnnotatedText(rec.text, ents, list(labels), source))
        loaded.unlocated.extend((i, n, m) for lab, m in rec.unlocated if (n := mapper(lab)))
    return loaded


def load_report(path: PathLike, format: Optional[str] = None,
                label_map: Optional[Mapping[str, Optional[str]]] = None,
                limit: Optional[int] = None, source: Optional[str] = None) -> Loaded:
    """`load`, also returning the detected format and the mentions not found in their text."""
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in READERS:
        raise ConfigError(f"Unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    src = source or source_name(path)
    mapper = make_label_mapper(src, label_map, keep_names=fmt in NATURAL_NAME_FORMATS)
    per_text = fmt in ("gliner", "slimer", "conversation", "fewnerd_episodes", "label_studio", "prodigy", "doccano")
    table = [] if fmt in NATURAL_NAME_FORMATS else dataset_labels(src)  # raw tags only
    file_labels = [] if per_text else list(dict.fromkeys([*_labels_beside(path), *table]))
    records: Iterable[_Record] = READERS[fmt](path)
    if limit is not None and (per_text or file_labels):
        # The label set is known without reading on, so stop at `limit`; other
        # files are read whole, so a limit never shrinks their label set.
        records = islice(records, limit)
    loaded = _to_examples(records, mapper, file_labels, src)
    loaded.format = fmt
    if limit is not None:
        loaded.examples = loaded.examples[:limit]
        loaded.unlocated = [u for u in loaded.unlocated if u[0] < limit]
    if loaded.unlocated:
        logger.warning("%s: %d gold mentions not found in their text", path, len(loaded.unlocated))
    return loaded


def load(path: PathLike, format: Optional[str] = None,
         label_map: Optional[Mapping[str, Optional[str]]] = None,
         limit: Optional[int] = None, source: Optional[str] = None) -> List[AnnotatedText]:
    """Read one data file into Examples (char offsets, natural label names, full label set).

    `format` overrides detection (see FORMATS); `label_map` maps raw tags to
    names (None drops a type); `source` overrides the data set name (the folder).
    """
    return load_report(path, format, label_map, limit, source).examples


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class DataFile:
    """One data file of the shared data folder, with its data set and split."""

    folder: str  # supervised | zeroshot_dev | open_types | pile_ner
    dataset: str
    split: str  # train | dev | test | all (no official split)
    path: Path
    format: str


NOT_DATA = frozenset({"README.md", "MANIFEST.md", "provenance.jsonl", "LICENSE", "labels.json",
                      "labels.txt", "ne_types_list.json", "all_423_NE_definitions.json"})
# Files whose split their name does not say (README / MANIFEST tables).
_SPLIT_OVERRIDES: Dict[str, str] = {
    "broad_twitter/a.conll": "train", "broad_twitter/b.conll": "train",
    "broad_twitter/e.conll": "train", "broad_twitter/g.conll": "train",
    "broad_twitter/h.conll": "dev", "broad_twitter/f.conll": "test",
    "sec_filings/FIN5.txt": "train", "sec_filings/FIN3.txt": "test",
    "stackoverflow_ner/GH_test_set.txt": "test",
}
# pile_ner holds three different data sets; TrueDef/FalseDef are one set asked two ways.
_DATASET_OVERRIDES: Dict[str, str] = {
    "pile_ner/validation_TrueDef.jsonl": "pile_ner_slimer",
    "pile_ner/validation_FalseDef.jsonl": "pile_ner_slimer_falsedef",
    "pile_ner/gliner_sample_data.json": "pile_ner_gliner",
}
_SPLIT_WORDS = (("train", "train"), ("devel", "dev"), ("valid", "dev"), ("val", "dev"),
                ("dev", "dev"), ("test", "test"))
# Where one split exists in two formats (CrossNER/MIT: BIO and IE JSON), keep the one
# with the names the published figures used.
_PREFERENCE = {"ie_json": 0}
DATA_FOLDERS = ("supervised", "zeroshot_dev", "open_types", "pile_ner")


def _part(name: str) -> str:
    """A file name without its data extensions: `dev.ie.json` and `dev.txt` are both `dev`."""
    return re.sub(r"(\.ie)?\.(json|jsonl|txt|tsv|conll|conllu|bio|csv|spacy)$", "", name)


def split_of(rel: str) -> str:
    """train / dev / test / all, from a file's path relative to its folder."""
    if rel in _SPLIT_OVERRIDES:
        return _SPLIT_OVERRIDES[rel]
    words = re.split(r"[^a-z]+", Path(rel).name.lower())
    for word, split in _SPLIT_WORDS:
        if any(w == word or (word == "train" and w.startswith("train")) for w in words):
            return split
    return "all"


def iter_data_files(root: PathLike, folders: Sequence[str] = DATA_FOLDERS,
                    splits: Optional[Sequence[str]] = None, dedupe: bool = True) -> Iterator[DataFile]:
    """Every data file under `root` (the shared data folder) with data set, split and format.

    `splits` filters (e.g. ("train", "all")); `dedupe` keeps one file per
    (data set, split, part) where the same data exists in two formats.
    """
    root = Path(root)
    chosen: Dict[Tuple[str, str, str], DataFile] = {}
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file() and p.name not in NOT_DATA):
            rel = path.relative_to(base).as_posix()
            split = split_of(rel)
            if splits is not None and split not in splits:
                continue
            dataset = _DATASET_OVERRIDES.get(f"{folder}/{rel}", path.parent.name if path.parent != base else folder)
            try:
                fmt = detect_format(path)
            except (ValueError, UnicodeDecodeError) as err:
                logger.warning("skipping %s: %s", path, err)
                continue
            item = DataFile(folder, dataset, split, path, fmt)
            key = (dataset, split, _part(path.name) if dedupe else str(path))
            old = chosen.get(key)
            if old is None or _PREFERENCE.get(fmt, 1) < _PREFERENCE.get(old.format, 1):
                chosen[key] = item
    yield from chosen.values()
