"""Label paraphrases and type mapping (`uniner.Paraphrases.v1`).

The student answers best for the types it saw often in Pile-NER, so a user
label is also asked under its nearest frequent types ("film" → "movie"), and
open types from a teacher or an all-types query are mapped back onto the
user's label set. The shipped type list (`assets/pile_ner_types.json`, the 455
frequent Pile-NER types) is derived from Pile-NER, CC BY-NC 4.0.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import ConfigError
from ..registry import registry
from ..trust import read_text
from ..types import Labels, label_key
from .embeddings import Embedder, label_text, shared_embedder

TYPES_PATH = Path(__file__).parent.parent / "assets" / "pile_ner_types.json"


def load_type_list(path: Optional[Union[str, Path]] = None) -> List[str]:
    """The shipped Pile-NER type list (most frequent first), or a JSON list of names at `path`."""
    path = Path(path) if path else TYPES_PATH
    data = json.loads(read_text(path, "paraphrase type list"))  # a regular file, capped: a config names it
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise ConfigError(f"{path} must hold a JSON list of type names")
    return list(dict.fromkeys(t.strip() for t in data if t.strip()))


def _label_map(labels: Labels) -> Dict[str, Optional[str]]:
    return dict(labels) if isinstance(labels, Mapping) else {l: None for l in labels}


class Paraphrases:
    """`{label: description}` → `{label: [known types to ask as well]}`.

    For each label, the `top_k` nearest types of the known list with cosine
    similarity ≥ `min_similarity`; types equal to a user label (ignoring case,
    spaces and underscores) are never proposed, since they are asked already,
    nor, when `spelling_ratio` is set, mere spelling variants of the label
    (rapidfuzz ratio ≥ `spelling_ratio`: `organisation`, `locations`).
    """

    def __init__(self, top_k: int = 2, min_similarity: float = 0.7, *,
                 types: Optional[Sequence[str]] = None, embedder: Optional[Embedder] = None,
                 use_descriptions: bool = True, spelling_ratio: Optional[float] = 90.0):
        if top_k < 0:
            raise ConfigError(f"top_k must be ≥ 0, got {top_k}")
        if not -1.0 <= min_similarity <= 1.0:
            raise ConfigError(f"min_similarity is a cosine similarity in [-1, 1], got {min_similarity}")
        self.top_k = top_k
        self.min_similarity = min_similarity
        unique: Dict[str, str] = {}
        for t in types if types is not None else load_type_list():
            unique.setdefault(label_key(t), t)  # `medical condition` and `medical_condition`: first wins
        self.types = list(unique.values())
        self.embedder = embedder or shared_embedder()
        self.use_descriptions = use_descriptions
        self.spelling_ratio = spelling_ratio

    def _variant(self, a: str, b: str) -> bool:
        if self.spelling_ratio is None:
            return False
        from rapidfuzz import fuzz

        return fuzz.ratio(label_key(a), label_key(b)) >= self.spelling_ratio

    def scored(self, labels: Labels) -> Dict[str, List[tuple]]:
        """{label: [(type, similarity), ...]} best first, before the top-k cut."""
        label_map = _label_map(labels)
        if not label_map or not self.types or self.top_k == 0:
            return {l: [] for l in label_map}
        taken = {label_key(l) for l in label_map}
        names = list(label_map)
        types = self.types
        queries = [label_text(l, label_map[l] if self.use_descriptions else None) for l in names]
        sims = self.embedder.similarity(queries, types)
        out: Dict[str, List[tuple]] = {}
        for i, label in enumerate(names):
            order = np.argsort(-sims[i], kind="stable")
            out[label] = [(types[j], float(sims[i, j])) for j in order
                          if sims[i, j] >= self.min_similarity and label_key(types[j]) not in taken
                          and not self._variant(types[j], label)]
        return out

    def __call__(self, labels: Labels) -> Dict[str, List[str]]:
        return {l: [t for t, _ in ranked[: self.top_k]] for l, ranked in self.scored(labels).items()}


def map_types(open_types: Iterable[str], labels: Labels, threshold: float = 0.6, *,
              embedder: Optional[Embedder] = None) -> Dict[str, Optional[str]]:
    """Map open types (from a teacher or an all-types query) onto the user's labels.

    Exact matches (ignoring case, spaces, underscores) win; otherwise the most
    similar label if its cosine similarity is ≥ `threshold`, else None.
    Descriptions in a `{label: description}` map are embedded with the label.
    """
    label_map = _label_map(labels)
    names = list(label_map)
    by_key = {label_key(l): l for l in names}
    types = list(dict.fromkeys(open_types))
    out: Dict[str, Optional[str]] = {t: by_key.get(label_key(t)) for t in types}
    rest = [t for t in types if out[t] is None]
    if rest and names:
        embedder = embedder or shared_embedder()
        sims = embedder.similarity(rest, [label_text(l, label_map[l]) for l in names])
        for i, t in enumerate(rest):
            j = int(np.argmax(sims[i]))
            out[t] = names[j] if sims[i, j] >= threshold else None
    return out


@registry.misc("uniner.Paraphrases.v1")
def make_paraphrases(top_k: int = 2, min_similarity: float = 0.7, types_path: Optional[str] = None,
                     model: Optional[str] = None, disk_cache: bool = False,
                     use_descriptions: bool = True,
                     spelling_ratio: Optional[float] = 90.0) -> Paraphrases:
    """`uniner.Paraphrases.v1`: the component's `paraphrases` hook."""
    return Paraphrases(top_k, min_similarity, types=load_type_list(types_path),
                       embedder=shared_embedder(model, disk_cache), use_descriptions=use_descriptions,
                       spelling_ratio=spelling_ratio)
