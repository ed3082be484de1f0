"""Declarative rules over one doc's candidates: edits, merges, gazetteers, filters.

A rule set is a YAML or JSON file (schema in rules/README.md), validated on
load: an unknown key or a bad value is an error that names it. The shipped
sets live in the top-level `rules/*.yaml` (the single source of truth, installed
as the package `uniner_spacy.rulesets`); `uniner.Rules.v1` takes a path or a shipped set's name
("default", "biomedical", "social_media").

Order per doc: edits → merges → gazetteers → filters, then one candidate per
(start, end, label).

Rule regexes run on the `regex` package with a time limit per match
(`REGEX_TIMEOUT`): a pattern that backtracks catastrophically on some span raises
`RuleTimeout` naming the rule, which the component records for that doc (it is
no `RulesError`: those are bad settings, which stop the run), instead of
hanging the run. That holds for a `REGEX` inside Matcher token patterns too:
spaCy would run it with `re`, which has no limit, so it is taken out of the
pattern and run here (`TokenRegex`).

A gazetteer `file:` is read only inside the rules file's folder (or a saved
pipeline's), as a regular file under a size cap (`trust.contained`,
docs/security.md).
"""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import regex
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span, Token

from ..errors import RulesError, StageError
from ..registry import registry
from ..trust import MAX_DATA_BYTES, contained, read_text
from ..types import Candidate

# the top-level rules/ folder, installed as the package uniner_spacy.rulesets
RULES_DIR = Path(str(importlib.resources.files("uniner_spacy.rulesets")))
SAVED_FILE = "rules.json"  # a rule set inside a saved pipeline

PRONOUNS = frozenset("""i me my mine myself you your yours yourself yourselves he him his himself she
her hers herself it its itself we us our ours ourselves they them their theirs themselves this that
these those who whom whose which what whoever whatever something someone somebody anything anyone
anybody everything everyone everybody nothing nobody one ones u ur ya""".split())
DETERMINERS = frozenset("a an the this that these those some any each every no all both either neither".split())
ARTICLES = ("a", "an", "the")
# seconds one rule regex may spend on one span; candidate spans are short, so only a pathological
# pattern (`^(a|aa)+$`) gets near it
REGEX_TIMEOUT = 0.25


def _closes(before: str, last: str) -> bool:
    """A closing bracket whose opener is inside the span stays: `IL-2 (human)`."""
    pairs = {")": "(", "]": "[", "}": "{"}
    return last in pairs and before.count(pairs[last]) > before.count(last)




# ------------------------------------------------------------------ schema

_BOUNDS = ("min_tokens", "max_tokens", "min_chars", "max_chars")
_LABEL_FILTER_KEYS = {*_BOUNDS, "regex", "exclude_regex", "patterns", "exclude_patterns", "block"}
_FILTER_KEYS = {"pronouns", "determiners", "stop_words", "punctuation", *_BOUNDS, "block", "labels"}
_EDIT_KEYS = {"strip_leading", "strip_trailing_punct", "labels"}
_MERGE_KEYS = {"enabled", "joiners", "labels", "max_gap_tokens"}
_GAZ_KEYS = {"label", "entries", "file", "fuzzy", "mode", "score", "case_sensitive"}
_TOP_KEYS = {"version", "description", "filters", "edits", "merges", "gazetteers"}
GAZETTEER_MODES = ("add", "normalise", "both")


def _err(where: str, msg: str) -> RulesError:
    return RulesError(f"{where}: {msg}")


def _check_keys(obj: Any, allowed: set, where: str) -> Dict[str, Any]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise _err(where, f"expected a mapping, got {type(obj).__name__} {obj!r}")
    bad = sorted(set(obj) - allowed)
    if bad:
        raise _err(where, f"unknown key {bad[0]!r}; allowed keys: {', '.join(sorted(allowed))}")
    return dict(obj)


def _bool(obj: Mapping, key: str, where: str, default: bool = False) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise _err(f"{where}.{key}", f"expected true or false, got {value!r}")
    return value


def _int(obj: Mapping, key: str, where: str, default: Optional[int] = None) -> Optional[int]:
    value = obj.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise _err(f"{where}.{key}", f"expected a whole number ≥ 0, got {value!r}")
    return value


def _strings(obj: Mapping, key: str, where: str) -> List[str]:
    value = obj.get(key, [])
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(f"{where}.{key}", f"expected a list of strings, got {value!r}")
    return value


class RuleTimeout(StageError, TimeoutError):
    """A rule regex ran out of time on one span: that doc's failure, not a bad setting."""


@dataclass
class RuleRegex:
    """A rule's compiled pattern and where it was written (named when a search runs out of time)."""

    pattern: "regex.Pattern[str]"
    where: str

    def search(self, text: str, timeout: float) -> bool:
        try:
            return self.pattern.search(text, timeout=timeout) is not None
        except TimeoutError:
            raise RuleTimeout(f"{self.where}: regular expression {self.pattern.pattern!r} took over {timeout} s "
                              f"on {text[:80]!r} (catastrophic backtracking?)") from None


def _regex(obj: Mapping, key: str, where: str) -> Optional[RuleRegex]:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _err(f"{where}.{key}", f"expected a regular expression string, got {value!r}")
    try:
        return RuleRegex(regex.compile(value), f"{where}.{key}")
    except regex.error as e:
        raise _err(f"{where}.{key}", f"invalid regular expression {value!r}: {e}") from None


# token attributes whose value is a string, as spaCy's REGEX predicate reads it (MORPH: its string form)
_STRING_ATTRS = {"ORTH": "orth_", "TEXT": "orth_", "LOWER": "lower_", "NORM": "norm_", "SHAPE": "shape_",
                 "PREFIX": "prefix_", "SUFFIX": "suffix_", "LEMMA": "lemma_", "POS": "pos_", "TAG": "tag_",
                 "DEP": "dep_", "ENT_TYPE": "ent_type_", "ENT_ID": "ent_id_", "ENT_KB_ID": "ent_kb_id_",
                 "MORPH": "morph"}


@dataclass
class TokenRegex:
    """A `REGEX` taken out of a Matcher token pattern: run on each token by the guarded engine, its
    result set as the token extension `extension`, which the rewritten pattern asks to be True."""

    extension: str
    attr: str  # a spaCy attribute name (`_STRING_ATTRS`), or a custom extension's name after "_."
    regex: RuleRegex

    def value(self, token: Token) -> Any:
        if self.attr.startswith("_."):
            return token._.get(self.attr[2:])
        return str(getattr(token, _STRING_ATTRS[self.attr]))

    def mark(self, doc: Doc, timeout: float) -> None:
        for token in doc:
            value = self.value(token)
            token._.set(self.extension, isinstance(value, str) and self.regex.search(value, timeout))


def _token_regex(attr: str, value: Any, where: str) -> TokenRegex:
    if not isinstance(value, str):
        raise _err(where, f"REGEX takes one pattern string here (a REGEX holding IN or other operators would "
                   f"run without the time limit; join alternatives with |), got {value!r}")
    try:
        compiled = regex.compile(value)
    except regex.error as e:
        raise _err(where, f"invalid regular expression {value!r}: {e}") from None
    name = "uniner_rx_" + hashlib.sha1(f"{attr}\0{value}".encode("utf8")).hexdigest()[:16]
    if not Token.has_extension(name):
        Token.set_extension(name, default=False)
    return TokenRegex(name, attr, RuleRegex(compiled, where))


def _holds_regex(obj: Any) -> bool:
    if isinstance(obj, Mapping):
        return any((isinstance(k, str) and k.upper() == "REGEX") or _holds_regex(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_holds_regex(v) for v in obj)
    return False


def _regex_key(value: Any) -> Optional[str]:
    """The key of a REGEX predicate in one attribute's dict (in any case, as spaCy reads it), or None."""
    if not isinstance(value, Mapping):
        return None
    return next((k for k in value if isinstance(k, str) and k.upper() == "REGEX"), None)


_DROPPED = object()  # an attribute whose only predicate was its REGEX


def _guard_token(spec: Mapping, where: str, guards: List[TokenRegex]) -> Dict[str, Any]:
    """One token dict with each `{ATTR: {"REGEX": p}}` (and `{"_": {ext: {"REGEX": p}}}`) replaced by
    a check of the extension its `TokenRegex` sets."""
    marks: Dict[str, Any] = {}

    def take(attr: str, value: Any, at: str) -> Any:
        key = _regex_key(value)
        if key is None:
            return value
        if not attr.startswith("_.") and attr not in _STRING_ATTRS:
            raise _err(at, f"REGEX applies to a string attribute ({', '.join(sorted(_STRING_ATTRS))})")
        guard = _token_regex(attr, value[key], at)
        guards.append(guard)
        marks[guard.extension] = True
        return {k: x for k, x in value.items() if k != key} or _DROPPED

    out: Dict[str, Any] = {}
    extensions: Dict[str, Any] = {}
    for attr, value in spec.items():
        if attr == "_" and isinstance(value, Mapping):
            extensions.update({n: take(f"_.{n}", v, f"{where}._.{n}") for n, v in value.items()})
        else:
            out[attr] = take(str(attr).upper(), value, f"{where}.{attr}")
    out = {k: v for k, v in out.items() if v is not _DROPPED}
    extensions = {**{k: v for k, v in extensions.items() if v is not _DROPPED}, **marks}
    if extensions or "_" in spec:
        out["_"] = extensions
    if _holds_regex(out):  # nested (inside FUZZY, say): spaCy would run it unguarded
        raise _err(where, "a REGEX may stand only as {ATTR: {'REGEX': pattern}} in a token pattern, "
                   f"got {dict(spec)!r}")
    return out


def _guard_patterns(patterns: List[list], where: str) -> Tuple[List[list], List[TokenRegex]]:
    """The patterns with every REGEX run by the guarded engine instead of spaCy's `re`, and those regexes."""
    guards: List[TokenRegex] = []
    out = [[_guard_token(t, f"{where}[{k}][{j}]", guards) for j, t in enumerate(p)] for k, p in enumerate(patterns)]
    return out, guards


@dataclass
class LengthBounds:
    min_tokens: Optional[int] = None
    max_tokens: Optional[int] = None
    min_chars: Optional[int] = None
    max_chars: Optional[int] = None

    @classmethod
    def parse(cls, obj: Mapping, where: str) -> "LengthBounds":
        b = cls(*(_int(obj, k, where) for k in _BOUNDS))
        for lo, hi in (("min_tokens", "max_tokens"), ("min_chars", "max_chars")):
            if getattr(b, lo) is not None and getattr(b, hi) is not None and getattr(b, lo) > getattr(b, hi):
                raise _err(where, f"{lo} ({getattr(b, lo)}) is larger than {hi} ({getattr(b, hi)})")
        return b

    def ok(self, span: Span) -> bool:
        n, chars = len(span), len(span.text)
        return not ((self.min_tokens is not None and n < self.min_tokens)
                    or (self.max_tokens is not None and n > self.max_tokens)
                    or (self.min_chars is not None and chars < self.min_chars)
                    or (self.max_chars is not None and chars > self.max_chars))


@dataclass
class LabelFilter:
    bounds: LengthBounds
    regex: Optional[RuleRegex] = None
    exclude_regex: Optional[RuleRegex] = None
    patterns: List[list] = field(default_factory=list)  # each REGEX replaced (`_guard_patterns`)
    exclude_patterns: List[list] = field(default_factory=list)
    block: frozenset = frozenset()
    guards: List[TokenRegex] = field(default_factory=list)  # the REGEXes taken out of both lists


@dataclass
class Gazetteer:
    label: str
    entries: List[str]
    fuzzy: Optional[float] = None  # rapidfuzz ratio threshold (0-100); None = exact only
    mode: str = "add"
    score: float = 1.0
    case_sensitive: bool = False


def _patterns(obj: Mapping, key: str, where: str) -> List[list]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(p, list) and p and all(isinstance(t, Mapping) for t in p)
                                              for p in value):
        raise _err(f"{where}.{key}", "expected a list of token patterns, each a non-empty list of "
                   f"token dicts like [{{'IS_TITLE': true}}], got {value!r}")
    return value


def _validate_patterns(patterns: List[list], where: str, vocab, written: Optional[List[list]] = None) -> None:
    """Each pattern checked by spaCy's Matcher; a message shows the pattern as `written`."""
    matcher = Matcher(vocab, validate=True)
    for k, p in enumerate(patterns):
        try:
            matcher.add(f"p{k}", [p])
        except Exception as e:  # spaCy's MatchPatternError lists the bad token attribute
            shown = (written or patterns)[k]
            raise _err(f"{where}[{k}]", f"invalid Matcher pattern {shown!r}: {e}") from None


def _read_file(path: Path) -> Any:
    text = read_text(path, f"rules file {path}")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise RulesError(f"{path}: not valid JSON: {e}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RulesError(f"{path}: not valid YAML: {e}") from None


def resolve_rules_path(path: Union[str, Path]) -> Path:
    """A file path, or the name of a shipped set (`default` → rules/default.yaml)."""
    p = Path(path)
    if p.exists():
        return p
    if isinstance(path, str) and re.fullmatch(r"[A-Za-z0-9_\-]+", path):
        for ext in (".yaml", ".yml", ".json"):
            shipped = RULES_DIR / f"{path}{ext}"
            if shipped.exists():
                return shipped
    names = sorted(q.stem for q in RULES_DIR.glob("*.y*ml"))
    raise RulesError(f"No rules file {str(path)!r}; give a path or a shipped set: {', '.join(names)}")


def shipped_rule_sets() -> List[str]:
    return sorted(q.stem for q in RULES_DIR.glob("*.yaml"))


# ------------------------------------------------------------------ the stage

class Rules:
    """A Stage built from a validated rule mapping (see rules/README.md)."""

    regex_timeout: float = REGEX_TIMEOUT

    def __init__(self, data: Mapping[str, Any], *, name: str = "rules", base_dir: Optional[Path] = None):
        from spacy.vocab import Vocab

        self.name = name
        where = name
        top = _check_keys(data, _TOP_KEYS, where)
        version = top.get("version", 1)
        if version != 1:
            raise _err(f"{where}.version", f"only version 1 is known, got {version!r}")
        vocab = Vocab()
        # filters
        f = _check_keys(top.get("filters"), _FILTER_KEYS, f"{where}.filters")
        fw = f"{where}.filters"
        self.drop_pronouns = _bool(f, "pronouns", fw)
        self.drop_determiners = _bool(f, "determiners", fw)
        self.drop_stop_words = _bool(f, "stop_words", fw)
        self.drop_punctuation = _bool(f, "punctuation", fw)
        self.bounds = LengthBounds.parse(f, fw)
        self.block = frozenset(s.lower() for s in _strings(f, "block", fw))
        self.label_filters: Dict[str, LabelFilter] = {}
        labels = f.get("labels") or {}
        if not isinstance(labels, Mapping):
            raise _err(f"{fw}.labels", f"expected a mapping of label → filters, got {labels!r}")
        for label, spec in labels.items():
            lw = f"{fw}.labels.{label}"
            spec = _check_keys(spec, _LABEL_FILTER_KEYS, lw)
            written, written_out = _patterns(spec, "patterns", lw), _patterns(spec, "exclude_patterns", lw)
            keep_p, keep_g = _guard_patterns(written, f"{lw}.patterns")
            drop_p, drop_g = _guard_patterns(written_out, f"{lw}.exclude_patterns")
            lf = LabelFilter(
                LengthBounds.parse(spec, lw), _regex(spec, "regex", lw), _regex(spec, "exclude_regex", lw),
                keep_p, drop_p, frozenset(s.lower() for s in _strings(spec, "block", lw)), keep_g + drop_g,
            )
            _validate_patterns(lf.patterns, f"{lw}.patterns", vocab, written)
            _validate_patterns(lf.exclude_patterns, f"{lw}.exclude_patterns", vocab, written_out)
            self.label_filters[str(label)] = lf
        # edits
        e = _check_keys(top.get("edits"), _EDIT_KEYS, f"{where}.edits")
        self.edits = self._parse_edit(e, f"{where}.edits")
        self.label_edits: Dict[str, Tuple[frozenset, bool]] = {}
        edit_labels = e.get("labels") or {}
        if not isinstance(edit_labels, Mapping):
            raise _err(f"{where}.edits.labels", f"expected a mapping of label → edits, got {edit_labels!r}")
        for label, spec in edit_labels.items():
            lw = f"{where}.edits.labels.{label}"
            self.label_edits[str(label)] = self._parse_edit(_check_keys(spec, _EDIT_KEYS - {"labels"}, lw), lw)
        # merges
        m = _check_keys(top.get("merges"), _MERGE_KEYS, f"{where}.merges")
        mw = f"{where}.merges"
        self.merge = _bool(m, "enabled", mw, default=bool(m))
        self.joiners = frozenset(s.lower() for s in _strings(m, "joiners", mw))
        self.merge_labels = set(_strings(m, "labels", mw)) or None
        self.max_gap_tokens = _int(m, "max_gap_tokens", mw, default=1)
        # gazetteers
        gaz = top.get("gazetteers") or []
        if not isinstance(gaz, list):
            raise _err(f"{where}.gazetteers", f"expected a list of gazetteers, got {gaz!r}")
        self.gazetteers = [self._parse_gazetteer(g, f"{where}.gazetteers[{k}]", base_dir) for k, g in enumerate(gaz)]
        # the rule set with gazetteer files read in: what a saved pipeline stores (no outside paths)
        self.data = {**top, "gazetteers": [asdict(g) for g in self.gazetteers]}
        self.missing: Optional[str] = None  # set by make_rules for a file that is not there
        self._matchers: Dict[int, Tuple[Matcher, Matcher]] = {}  # per vocab

    @staticmethod
    def _parse_edit(spec: Mapping, where: str) -> Tuple[frozenset, bool]:
        lead = spec.get("strip_leading", [])
        if lead == "articles":
            lead = list(ARTICLES)
        if not isinstance(lead, list) or not all(isinstance(s, str) for s in lead):
            raise _err(f"{where}.strip_leading", f"expected a list of words or 'articles', got {lead!r}")
        return frozenset(s.lower() for s in lead), _bool(spec, "strip_trailing_punct", where)

    @staticmethod
    def _parse_gazetteer(spec: Any, where: str, base_dir: Optional[Path]) -> Gazetteer:
        g = _check_keys(spec, _GAZ_KEYS, where)
        label = g.get("label")
        if not isinstance(label, str) or not label.strip():
            raise _err(f"{where}.label", f"every gazetteer needs a label (a non-empty string), got {label!r}")
        entries = _strings(g, "entries", where)
        if "file" in g:
            if not isinstance(g["file"], str):
                raise _err(f"{where}.file", f"expected a path string, got {g['file']!r}")
            # inside the rules file's folder (a rule set given as data: the working folder), where the
            # one who wrote the rules could put it: the entries end up in a saved pipeline
            path = contained(base_dir if base_dir is not None else Path.cwd(), g["file"], f"{where}.file")
            if not path.exists():
                raise _err(f"{where}.file", f"gazetteer file {str(path)!r} does not exist")
            entries += [l.strip() for l in read_text(path, f"{where}.file", MAX_DATA_BYTES).splitlines()
                        if l.strip() and not l.startswith("#")]
        if not entries:
            raise _err(where, "a gazetteer needs `entries` or a `file` with at least one entry")
        fuzzy = g.get("fuzzy")
        if fuzzy is not None and (isinstance(fuzzy, bool) or not isinstance(fuzzy, (int, float))
                                  or not 0 < fuzzy <= 100):
            raise _err(f"{where}.fuzzy", f"expected a rapidfuzz ratio threshold in (0, 100] or null, got {fuzzy!r}")
        mode = g.get("mode", "add")
        if mode not in GAZETTEER_MODES:
            raise _err(f"{where}.mode", f"expected one of {', '.join(GAZETTEER_MODES)}, got {mode!r}")
        score = g.get("score", 1.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            raise _err(f"{where}.score", f"expected a number in [0, 1], got {score!r}")
        return Gazetteer(label, list(dict.fromkeys(entries)), fuzzy, mode, float(score),
                         _bool(g, "case_sensitive", where))

    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.missing is not None:
            raise RulesError(self.missing)
        (path / SAVED_FILE).write_text(json.dumps(self.data, ensure_ascii=False, indent=1), encoding="utf8")

    def from_disk(self, path: Union[str, Path]) -> "Rules":
        file = contained(path, SAVED_FILE, f"saved rules in {path}")
        self.__init__(_read_file(file), name=self.name, base_dir=Path(path))  # type: ignore[misc]
        return self

    @classmethod
    def from_path(cls, path: Union[str, Path]) -> "Rules":
        p = resolve_rules_path(path)
        return cls(_read_file(p), name=str(p), base_dir=p.parent)

    # -- helpers -----------------------------------------------------------
    def _label_matchers(self, vocab) -> Tuple[Matcher, Matcher]:
        key = id(vocab)
        if key not in self._matchers:
            keep, drop = Matcher(vocab), Matcher(vocab)
            for label, lf in self.label_filters.items():
                if lf.patterns:
                    keep.add(label, lf.patterns)
                if lf.exclude_patterns:
                    drop.add(label, lf.exclude_patterns)
            self._matchers[key] = (keep, drop)
        return self._matchers[key]

    @staticmethod
    def _full_match(matcher: Matcher, sub: Doc, label: str) -> bool:
        if label not in matcher:
            return False
        key = sub.vocab.strings[label]
        return any(m == key and s == 0 and e == len(sub) for m, s, e in matcher(sub))

    # -- steps -------------------------------------------------------------
    def edit(self, doc: Doc, c: Candidate) -> Optional[Candidate]:
        lead, trail = self.label_edits.get(c.label, self.edits)
        span = doc.char_span(c.start, c.end, alignment_mode="expand")
        if span is None or (not lead and not trail):
            return c
        s, e = span.start, span.end
        while s < e and lead and doc[s].lower_ in lead:
            s += 1
        while e > s and trail and doc[e - 1].is_punct and not _closes(doc[s : e - 1].text, doc[e - 1].text):
            e -= 1
        if s == e:
            return None
        if (s, e) == (span.start, span.end):
            return c
        return replace(c, start=doc[s].idx, end=doc[e - 1].idx + len(doc[e - 1]))

    def merge_adjacent(self, doc: Doc, candidates: List[Candidate]) -> List[Candidate]:
        """Join same-label fragments separated by nothing or by joiner tokens (`of`, `&`)."""
        if not self.merge:
            return candidates
        out: List[Candidate] = []
        by_label: Dict[str, List[Candidate]] = {}
        for c in candidates:
            by_label.setdefault(c.label, []).append(c)
        for label, group in by_label.items():
            if self.merge_labels is not None and label not in self.merge_labels:
                out.extend(group)
                continue
            group.sort(key=lambda c: (c.start, c.end))
            current = group[0]
            for nxt in group[1:]:
                if self._joinable(doc, current, nxt):
                    current = replace(current, end=max(current.end, nxt.end),
                                      score=min(current.score, nxt.score),
                                      source=" + ".join(dict.fromkeys(filter(None, (current.source, nxt.source)))),
                                      match="merged")
                else:
                    out.append(current)
                    current = nxt
            out.append(current)
        return out

    def _joinable(self, doc: Doc, a: Candidate, b: Candidate) -> bool:
        if b.start < a.end:
            return False
        gap = doc.char_span(a.end, b.start, alignment_mode="expand") if b.start > a.end else None
        if b.start > a.end and not doc.text[a.end : b.start].strip():
            return True
        if gap is None:
            return b.start == a.end
        return len(gap) <= (self.max_gap_tokens or 0) and all(t.lower_ in self.joiners for t in gap)

    def apply_gazetteers(self, doc: Doc, candidates: List[Candidate]) -> List[Candidate]:
        from rapidfuzz import fuzz, process

        out = list(candidates)
        for g in self.gazetteers:
            norm = (lambda s: s) if g.case_sensitive else str.lower
            entries = {norm(e): e for e in g.entries}
            threshold = g.fuzzy if g.fuzzy is not None else 100.0

            def best(text: str, g=g, norm=norm, entries=entries, threshold=threshold) -> Optional[Tuple[str, float]]:
                key = norm(text)
                if key in entries:
                    return entries[key], 100.0
                if g.fuzzy is None:
                    return None
                hit = process.extractOne(key, list(entries), scorer=fuzz.ratio, score_cutoff=threshold)
                return (entries[hit[0]], float(hit[1])) if hit else None

            if g.mode in ("normalise", "both"):
                for k, c in enumerate(out):
                    found = best(doc.text[c.start : c.end])
                    if found is not None and c.label != g.label:
                        out[k] = replace(c, label=g.label, source=f"{c.source} → gazetteer:{found[0]}")
            if g.mode in ("add", "both"):
                # window sizes around each entry's word count (tokenisers split `Corp.` apart)
                sizes = sorted({n + d for n in {len(e.split()) for e in g.entries} for d in (-1, 0, 1) if n + d > 0})
                hits = []
                for n in sizes:
                    for i in range(0, len(doc) - n + 1):
                        span = doc[i : i + n]
                        if span[0].is_punct or span[-1].is_punct or span[0].is_space or span[-1].is_space:
                            continue
                        found = best(span.text)
                        if found is not None:
                            hits.append((-found[1], span.start, span.end, found[0], span))
                # best match first, then non-overlapping: `of Acme Corporation` loses to `Acme Corporation`
                taken: List[Tuple[int, int]] = [(c.start, c.end) for c in out if c.label == g.label]
                for neg, _, _, entry, span in sorted(hits, key=lambda h: h[:3]):
                    s0, e0 = span.start_char, span.end_char
                    if any(s0 < e and e0 > s for s, e in taken):
                        continue
                    taken.append((s0, e0))
                    out.append(Candidate(s0, e0, g.label, g.score, f"gazetteer:{entry}",
                                         "exact" if neg == -100.0 else "fuzzy"))
        return out

    def keep(self, doc: Doc, c: Candidate) -> bool:
        span = doc.char_span(c.start, c.end, alignment_mode="expand")
        if span is None or len(span) == 0:
            return False
        words = [t for t in span if not t.is_space]
        lower = span.text.lower()
        if lower in self.block:
            return False
        if self.drop_punctuation and all(t.is_punct for t in words):
            return False
        if self.drop_pronouns and all(t.lower_ in PRONOUNS or t.pos_ == "PRON" for t in words):
            return False
        if self.drop_determiners and all(t.lower_ in DETERMINERS or t.pos_ == "DET" or t.is_punct for t in words):
            return False
        if self.drop_stop_words and all(t.is_stop or t.is_punct for t in words):
            return False
        if not self.bounds.ok(span):
            return False
        lf = self.label_filters.get(c.label)
        if lf is None:
            return True
        if lower in lf.block or not lf.bounds.ok(span):
            return False
        if lf.regex is not None and not lf.regex.search(span.text, self.regex_timeout):
            return False
        if lf.exclude_regex is not None and lf.exclude_regex.search(span.text, self.regex_timeout):
            return False
        if not (lf.patterns or lf.exclude_patterns):
            return True
        keep_m, drop_m = self._label_matchers(doc.vocab)
        sub = span.as_doc()
        for guard in lf.guards:  # the patterns' REGEXes, under the time limit (raises RuleTimeout)
            guard.mark(sub, self.regex_timeout)
        if lf.patterns and not self._full_match(keep_m, sub, c.label):
            return False
        if lf.exclude_patterns and self._full_match(drop_m, sub, c.label):
            return False
        return True

    def __call__(self, doc: Doc, candidates: List[Candidate]) -> List[Candidate]:
        if self.missing is not None:
            raise RulesError(self.missing)
        edited = [e for e in (self.edit(doc, c) for c in candidates) if e is not None]
        merged = self.merge_adjacent(doc, edited)
        with_gaz = self.apply_gazetteers(doc, merged) if self.gazetteers else merged
        kept = [c for c in with_gaz if self.keep(doc, c)]
        best: Dict[Tuple[int, int, str], Candidate] = {}
        for c in kept:
            k = (c.start, c.end, c.label)
            if k not in best or c.score > best[k].score:
                best[k] = c
        return sorted(best.values(), key=lambda c: (c.start, c.end, c.label))


def load_rules(path: Union[str, Path]) -> Rules:
    return Rules.from_path(path)


@registry.misc("uniner.Rules.v1")
def make_rules(path: str = "default") -> Rules:
    """`uniner.Rules.v1`: a rules Stage from a file path or a shipped set name.

    A path that is not there is an error at first use rather than now: a saved pipeline that moved
    still names the original file, and its from_disk supplies the saved rules first.
    """
    file = Path(path)
    if file.suffix.lower() in (".yaml", ".yml", ".json") and not file.exists():
        rules = Rules({}, name=str(path))
        rules.missing = f"No rules file {str(path)!r}"
        return rules
    return Rules.from_path(path)  # a bad file, or a shipped-set name that does not exist: said now
