"""A trained type chooser: one probability per candidate (span, label) that it is right.

The student finds the right spans more often than it picks their types: a span is often claimed by
several labels (`person` and `writer` on `Tolkien`). The conflict stage mixes the answer score with
an untrained similarity; this stage scores every candidate with a small model fitted on the student's
own candidates over training text (`training/chooser.py`), marked right or wrong against the gold.
Its inputs are the signals the similarity alone lacks: the answer score against the best competing
claim's, how many labels claimed the span, the label set's structure (a generic label beside a
specific one), the agreement of the label with the type a supervised spaCy `ner` gives the span, and
the MiniLM fit of mention-in-context to label. Features are relative to the competing claims, so
they mean the same thing for any label set.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from spacy.tokens import Doc

from ..errors import ConfigError
from ..registry import registry
from ..types import Candidate, label_key
from .conflicts import _context, conflict_groups
from .embeddings import Embedder, label_text, shared_embedder
from .precision import load_ner

WEIGHTS_VERSION = 1
# labels naming a kind that every finer type of a label set is also one of: beside a finer label,
# data sets use them for what no finer label takes (CrossNER's `person` beside `writer`)
GENERIC = frozenset({"person", "people", "organization", "organisation", "location", "place", "misc",
                     "miscellaneous", "else", "other", "entity", "thing", "product", "event"})
# what the supervised `ner`'s types mean, for comparing them with any label's wording
NER_GLOSSES = {
    "PERSON": "person, people, including fictional", "NORP": "nationality, religious or political group",
    "FAC": "facility, building, airport, highway, bridge",
    "ORG": "organization, company, agency, institution, band, team",
    "GPE": "country, city, state", "LOC": "location, mountain range, body of water, region",
    "PRODUCT": "product, object, vehicle, food", "EVENT": "event, battle, war, sports event, festival",
    "WORK_OF_ART": "title of a book, song, film, album, work of art", "LAW": "law, named document",
    "LANGUAGE": "language", "DATE": "date, period", "TIME": "time of day", "PERCENT": "percentage",
    "MONEY": "money, monetary value", "QUANTITY": "measurement, quantity", "ORDINAL": "ordinal number",
    "CARDINAL": "number, numeral",
}
FEATURES = (
    "score", "score_logit", "score_margin", "same_span_labels", "overlap_labels", "context_prob",
    "context_sim", "ner_prob", "ner_sim", "ner_exact", "ner_overlap", "generic", "generic_beside_specific",
    "specific_beside_generic", "sibling_sim", "match_case", "match_fuzzy", "log_tokens", "capitalised",
)
# choice: a softmax over each conflict group's candidates; verify: each candidate's own chance
OBJECTIVES = ("choice", "verify")


@dataclass
class ChooserWeights:
    """A logistic model over `FEATURES`, standardised (`mean`, `scale`); loaded from JSON."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    meta: Dict

    @classmethod
    def load(cls, path: Path) -> "ChooserWeights":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"Could not read the chooser's weights {path}: {err}") from err
        if data.get("version") != WEIGHTS_VERSION or list(data.get("features", [])) != list(FEATURES):
            raise ConfigError(f"{path} holds chooser weights of another version or feature list; "
                              "retrain them with `python -m training.chooser fit`")
        return cls(np.asarray(data["coef"], float), float(data["intercept"]), np.asarray(data["mean"], float),
                   np.asarray(data["scale"], float), dict(data.get("meta", {})))

    def to_json(self) -> str:
        return json.dumps({"version": WEIGHTS_VERSION, "features": list(FEATURES), "coef": self.coef.tolist(),
                           "intercept": self.intercept, "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                           "meta": self.meta}, indent=1)

    @property
    def objective(self) -> str:
        return str(self.meta.get("objective", "verify"))

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def rescore(self, candidates: Sequence[Candidate], x: np.ndarray) -> List[float]:
        """New scores. `verify`: the model's chance that each candidate is right. `choice`: within each
        conflict group, the group's best incoming score times each member's softmax share relative to
        the most likely member's (the winner keeps the group's top score); other candidates keep theirs."""
        z = self.logits(x)
        if self.objective == "verify":
            return [float(v) for v in 1.0 / (1.0 + np.exp(-z))]
        scores = [c.score for c in candidates]
        for group in conflict_groups(list(candidates)):
            p = _softmax(z[group], 1.0)
            top = max(candidates[i].score for i in group)
            for i, share in zip(group, p / p.max()):
                scores[i] = float(top * share)
        return scores


def _softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    z = x / temperature
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def _overlapping(candidates: Sequence[Candidate]) -> List[List[int]]:
    """For each candidate, the indices of the candidates whose spans overlap its own (itself included)."""
    order = sorted(range(len(candidates)), key=lambda i: candidates[i].start)
    out: List[List[int]] = [[] for _ in candidates]
    for a, i in enumerate(order):
        ci = candidates[i]
        for j in order[a:]:
            cj = candidates[j]
            if cj.start >= ci.end:
                break
            out[i].append(j)
            if j != i:
                out[j].append(i)
    return out


class Chooser:
    """A Stage: each candidate's score becomes the model's chance that its (span, label) is right.

    `mix` keeps part of the incoming score (0: the model's alone). Candidates below `drop_below` are
    removed from `doc.ents`' choice but stay in `doc.spans` with their score (the component writes
    every candidate it is given, so dropping here means dropping from both; 0 keeps all).
    """

    def __init__(self, weights: ChooserWeights, *, embedder: Optional[Embedder] = None, ner_model: str = "default",
                 descriptions: Optional[Mapping[str, str]] = None, window: int = 3, mix: float = 0.0,
                 drop_below: float = 0.0):
        if not 0.0 <= mix <= 1.0:
            raise ConfigError(f"mix must be in [0, 1], got {mix}")
        if not 0.0 <= drop_below < 1.0:
            raise ConfigError(f"drop_below must be in [0, 1), got {drop_below}")
        self.weights = weights
        self.embedder = embedder or shared_embedder()
        self.ner_model = ner_model
        self.descriptions = dict(descriptions or {})
        self.window = window
        self.mix = mix
        self.drop_below = drop_below

    def __call__(self, doc: Doc, candidates: List[Candidate]) -> List[Candidate]:
        return self.pipe([doc], [candidates])[0]

    def pipe(self, docs: Sequence[Doc], candidate_lists: Sequence[List[Candidate]]) -> List[List[Candidate]]:
        feats = features(docs, candidate_lists, self.embedder, self.ner_model, self.descriptions, self.window)
        out: List[List[Candidate]] = []
        for cands, x in zip(candidate_lists, feats):
            if not cands:
                out.append([])
                continue
            p = self.weights.rescore(cands, x)
            new = [replace(c, score=float((1 - self.mix) * pi + self.mix * c.score)) for c, pi in zip(cands, p)]
            out.append([c for c in new if c.score >= self.drop_below])
        return out


def features(docs: Sequence[Doc], candidate_lists: Sequence[Sequence[Candidate]], embedder: Embedder,
             ner_model: str = "default", descriptions: Optional[Mapping[str, str]] = None,
             window: int = 3) -> List[np.ndarray]:
    """One (candidates, len(FEATURES)) matrix per doc; the same function serves training and use."""
    descriptions = descriptions or {}
    ner = load_ner(ner_model)
    ner_docs = list(ner.pipe(doc.text for doc in docs))
    labels = sorted({c.label for cands in candidate_lists for c in cands})
    glosses = sorted(NER_GLOSSES)
    mentions: List[str] = []
    contexts: List[str] = []
    for doc, cands in zip(docs, candidate_lists):
        mentions += [doc.text[c.start : c.end] for c in cands]
        contexts += [_context(doc, c.start, c.end, window) for c in cands]
    texts = [label_text(l, descriptions.get(l)) for l in labels] + [NER_GLOSSES[g] for g in glosses]
    vecs = embedder.encode(texts + mentions + contexts) if mentions else embedder.encode(texts)
    lab = dict(zip(labels, vecs[: len(labels)]))
    gloss = dict(zip(glosses, vecs[len(labels) : len(texts)]))
    n = len(mentions)
    mv = vecs[len(texts) : len(texts) + n]
    cv = vecs[len(texts) + n :]
    both = 0.5 * mv + 0.5 * cv
    both = both / (np.linalg.norm(both, axis=1, keepdims=True) + 1e-12)
    out: List[np.ndarray] = []
    row = 0
    for doc, ner_doc, cands in zip(docs, ner_docs, candidate_lists):
        x = np.zeros((len(cands), len(FEATURES)))
        near = _overlapping(cands)
        ents = [(e.start_char, e.end_char, e.label_) for e in ner_doc.ents if e.label_ in NER_GLOSSES]
        for i, c in enumerate(cands):
            others = [cands[j] for j in near[i] if j != i and cands[j].label != c.label]
            rivals = sorted({c.label} | {o.label for o in others})
            ctx = both[row + i]
            sims = np.array([float(ctx @ lab[l]) for l in rivals])
            exact = [t for s, e, t in ents if s == c.start and e == c.end]
            touching = [t for s, e, t in ents if s < c.end and e > c.start]
            found = exact or touching
            ner_type: Optional[str] = found[0] if found else None
            if ner_type is not None:
                gsims = np.array([float(gloss[ner_type] @ lab[l]) for l in rivals])
                ner_prob = float(_softmax(gsims, 0.05)[rivals.index(c.label)])
                ner_sim = float(gloss[ner_type] @ lab[c.label])
            else:
                ner_prob, ner_sim = 1.0 / len(rivals), 0.0
            generic = label_key(c.label) in GENERIC
            rival_generic = [label_key(l) in GENERIC for l in rivals if l != c.label]
            best_other = max((o.score for o in others), default=0.0)
            score = min(max(c.score, 1e-6), 1 - 1e-6)
            tokens = doc.char_span(c.start, c.end, alignment_mode="expand")
            x[i] = (
                c.score, math.log(score / (1 - score)), c.score - best_other,
                len({o.label for o in others if (o.start, o.end) == (c.start, c.end)}),
                len(rivals) - 1, float(_softmax(sims, 0.05)[rivals.index(c.label)]), float(ctx @ lab[c.label]),
                ner_prob, ner_sim, float(bool(exact)), float(bool(touching)), float(generic),
                float(generic and not all(rival_generic) and bool(rival_generic)),
                float(not generic and any(rival_generic)),
                max((float(lab[c.label] @ lab[l]) for l in rivals if l != c.label), default=0.0),
                float(c.match == "case"), float(c.match == "fuzzy"),
                math.log(1 + (len(tokens) if tokens is not None else 1)),
                float(doc.text[c.start : c.start + 1].isupper()),
            )
        row += len(cands)
        out.append(x)
    return out


@registry.misc("uniner.Chooser.v1")
def make_chooser(weights: str, descriptions: Optional[Dict[str, str]] = None,
                 ner_model: str = "default", window: int = 3, mix: float = 0.0, drop_below: float = 0.0,
                 model: Optional[str] = None) -> Chooser:
    """`uniner.Chooser.v1`: a trained chooser as a Stage (`weights`: the JSON file `make chooser` writes).

    Experimental and off by default: on the zero-shot dev sets it scores below the conflict stage
    (docs/stages.md); no weights ship with the package."""
    return Chooser(ChooserWeights.load(Path(weights)),
                   embedder=shared_embedder(model), ner_model=ner_model, descriptions=descriptions,
                   window=window, mix=mix, drop_below=drop_below)
