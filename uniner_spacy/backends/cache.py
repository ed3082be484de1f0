"""An opt-in persistent answer cache, wrapped around any backend.

Keys are a content hash of (template version, model id with its weights'
hash and decoding settings, passage, question), so a changed model, prompt
or setting never reads a stale answer. SQLite in WAL mode makes it safe for
several processes at once; every batch is committed, so a killed run keeps
what it paid for; each row carries a checksum and a damaged file is set
aside and rebuilt instead of crashing the run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..pipeline.prompts import TEMPLATE_VERSION
from ..registry import registry
from ..types import Generation, Query, Serializable
from .base import Backend

logger = logging.getLogger(__name__)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf8")).hexdigest()


class AnswerCache:
    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.corrupt_rows = 0
        self.conn = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = self._connect()
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(ok)
            return conn
        except sqlite3.DatabaseError as err:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            logger.warning("Answer cache %s is damaged (%s); moved to %s and starting afresh", self.path, err, aside)
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS answers "
                     "(key TEXT PRIMARY KEY, value TEXT NOT NULL, checksum TEXT NOT NULL)")
        return conn

    @staticmethod
    def key(model_id: str, query: Query) -> str:
        return _digest(json.dumps([TEMPLATE_VERSION, model_id, query.passage, query.entity_type]))

    def get_many(self, keys: Sequence[str]) -> Dict[str, Generation]:
        found: Dict[str, Generation] = {}
        with self.lock:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                rows = self.conn.execute(
                    f"SELECT key, value, checksum FROM answers WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for key, value, checksum in rows:
                    if _digest(value)[:16] != checksum:
                        self.corrupt_rows += 1
                        self.conn.execute("DELETE FROM answers WHERE key = ?", (key,))
                        continue
                    data = json.loads(value)
                    pieces = [tuple(p) for p in data["logprobs"]] if data.get("logprobs") is not None else None
                    found[key] = Generation(text=data["text"], token_logprobs=pieces,
                                            forced=tuple(data.get("forced", ())))
        return found

    def put_many(self, items: Dict[str, Generation]) -> None:
        rows = []
        for key, gen in items.items():
            value = json.dumps({"text": gen.text, "logprobs": gen.token_logprobs, "forced": list(gen.forced)})
            rows.append((key, value, _digest(value)[:16]))
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", rows)
            self.conn.execute("COMMIT")

    def __len__(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


class CachedBackend:
    """Answers from the cache where it has them; asks the wrapped backend for the rest."""

    def __init__(self, backend: Backend, path: Union[str, Path]):
        self.backend = backend
        self.cache = AnswerCache(path)
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    def token_offsets(self, text: str) -> List[Tuple[int, int]]:
        return self.backend.token_offsets(text)

    # a saved pipeline carries the wrapped backend's data (an adapter); the cache file stays a reference
    def to_disk(self, path: Union[str, Path]) -> None:
        if isinstance(self.backend, Serializable):
            self.backend.to_disk(Path(path))

    def from_disk(self, path: Union[str, Path]) -> "CachedBackend":
        if isinstance(self.backend, Serializable):
            self.backend.from_disk(Path(path))
        return self

    def __call__(self, queries: Sequence[Query], *, mark_forced: bool = False) -> List[Generation]:
        # answers with forced marks are kept apart: an unmarked answer cannot say what was forced
        model_id = self.backend.model_id + ("|forced" if mark_forced else "")
        keys = [AnswerCache.key(model_id, q) for q in queries]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(queries) - len(todo)
        self.misses += len(todo)
        out: List[Optional[Generation]] = [found.get(k) for k in keys]
        if todo:
            answers = self.backend([queries[i] for i in todo], mark_forced=mark_forced)
            fresh = {}
            for i, gen in zip(todo, answers):
                out[i] = gen
                if gen.error is None:  # failures are retried next time, never cached
                    fresh[keys[i]] = gen
            if fresh:
                self.cache.put_many(fresh)
        return out  # type: ignore[return-value]


@registry.misc("uniner.Cached.v1")
def make_cached_backend(backend: Backend, path: str) -> CachedBackend:
    return CachedBackend(backend, path)
