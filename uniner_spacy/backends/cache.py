"""An opt-in persistent answer cache, wrapped around any backend; best effort, and loud.

Keys are a content hash of everything that changes an answer: template version, model id (its
weights' hash and decoding settings), passage, question and the passage's token offsets a grammar
keeps mentions to (`Query.words`). SQLite in WAL mode with a busy timeout lets several processes
share one file; every batch is committed, so a killed run keeps what it paid for; each row carries
a checksum.

The cache never costs the run an answer: a write that fails (disk full, locked, I/O) is rolled
back and warned about once, with the answers still returned; a read that fails is a miss. It never
destroys what is not its own: only a regular file that begins with SQLite's header and that SQLite
reports as damaged is set aside (renamed, with its `-wal`/`-shm`, never deleted, and only while no
process holds locks on them); a file that is no SQLite database (a user's file that `path` names by
mistake, or by a config's design), a folder, a locked or unreadable file, or a newer layout stops
the run at open with a `CacheError` that says what to do. A read-only file is used read-only, with a warning.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

from ..errors import CacheError
from ..io import text_sha256
from ..questions.prompts import TEMPLATE_VERSION
from ..registry import registry
from ..types import Generation, Query, Serializable
from .base import Backend

logger = logging.getLogger(__name__)

# the row layout: bump when keys, values or checksums change. Each layout has its own table, so
# an older one's rows stay where they are (an older uniner-spacy sharing the file keeps them)
SCHEMA_VERSION = 1
TABLE = f"answers_v{SCHEMA_VERSION}"
_SIDE_FILES = ("-wal", "-shm")


def _checksum(key: str, value: str) -> str:
    return text_sha256(key + "\n" + value)[:16]  # a value under another row's key is damaged too


# SQLite's result codes by the words of their messages, where Python (< 3.11) gives no name
_MESSAGES = {"not a database": "SQLITE_NOTADB", "malformed": "SQLITE_CORRUPT", "locked": "SQLITE_BUSY",
             "readonly": "SQLITE_READONLY", "unable to open": "SQLITE_CANTOPEN", "disk i/o": "SQLITE_IOERR",
             "full": "SQLITE_FULL"}


def _error_name(err: BaseException) -> str:
    name = getattr(err, "sqlite_errorname", None)
    if name:
        return name
    msg = str(err).lower()
    return next((code for words, code in _MESSAGES.items() if words in msg), "")


class _Damaged(sqlite3.DatabaseError):
    """`PRAGMA quick_check` found a damaged file."""

    sqlite_errorname = "SQLITE_CORRUPT"


def _has_header(path: Path) -> bool:
    """Whether a file starts as every SQLite database does (an empty file is a new database)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return True  # SQLite's own error says more
    return not head or head == b"SQLite format 3\x00"


def _lock_holders(files: Sequence[Path]) -> Optional[Set[int]]:
    """Pids holding a lock on any of `files`, from Linux's /proc/locks (no file is opened, so no
    lock of this process is disturbed); None where that cannot be told.

    Inodes are compared without the device (overlay file systems report it differently), so a
    lock on a namesake inode elsewhere reads as "held": the safe side.
    """
    inodes = set()
    for f in files:
        try:
            inodes.add(f.stat().st_ino)
        except OSError:
            pass
    if not inodes:
        return set()
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    holders = set()
    for line in lines:  # "1: POSIX  ADVISORY  READ 24400 fe:00:2147001 128 128" ("1: -> ..." for a waiter)
        parts = [p for p in line.split() if p != "->"]
        try:
            pid, inode = int(parts[4]), int(parts[5].rsplit(":", 1)[1])
        except (IndexError, ValueError):
            continue
        if inode in inodes:
            holders.add(pid)
    return holders


class AnswerCache:
    """The SQLite table of answers by key; every failure after open is a warning, not an exception."""

    def __init__(self, path: Union[str, Path], timeout: float = 60.0):
        self.path = Path(path)
        self.timeout = timeout  # seconds to wait for another process's write lock
        self.lock = threading.Lock()
        self.corrupt_rows = 0  # rows whose checksum failed (read as misses, replaced when asked again)
        self.unstored = 0  # answers that could not be written (returned to the caller all the same)
        self.readonly = False
        self._warned: Set[str] = set()
        self.conn = self._open()

    # ---------------------------------------------------------------- open

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if path.exists() and not path.is_file():
            raise CacheError(f"answer cache {path} is not a file (a folder?): give `path` a file name, "
                             f"e.g. {path / 'answers.sqlite'}; nothing there was touched")
        if not path.exists():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise CacheError(f"answer cache {path}: cannot create its folder ({err}); give another path") from err
            if not os.access(path.parent, os.W_OK):
                raise CacheError(f"answer cache {path}: cannot create it, the folder {path.parent} is not writable; "
                                 "give another path")
        elif not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            return self._open_readonly()
        elif _lock_holders(self._files()) == set() and not _has_header(path):
            # SQLite's own first test, made before it opens the file: closing a connection to such a
            # file, SQLite would delete the -wal and -shm beside it. Only while no connection has the
            # file open: closing any descriptor of a file drops this process's locks on it
            raise CacheError(self._not_sqlite())
        try:
            self._probe()
            return self._connect()
        except sqlite3.Error as err:
            name = _error_name(err)
            if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) and path.is_file():
                self._set_aside(err)
            elif name.startswith("SQLITE_READONLY") and path.is_file():
                return self._open_readonly()
            else:
                raise CacheError(self._explain(err)) from err
        return self._connect_explained()  # afresh, after the damaged file was set aside

    def _probe(self) -> None:
        """SQLite's error for a damaged file, found by a read-only connection, where a crashed writer
        left a -wal or -shm: a read-write connection to a file SQLite calls no database deletes them
        when it closes, and they belong with the file that is set aside. Other errors are left for
        the read-write open to meet (a read-only connection may fail where that one would not)."""
        if not any(f.exists() for f in self._files()[1:]) or _lock_holders(self._files()) != set():
            return
        try:
            probe = self._sqlite(self.path.resolve().as_uri() + "?mode=ro")
            try:
                probe.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            finally:
                probe.close()
        except sqlite3.Error as err:
            if _error_name(err).startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
                raise

    def _connect_explained(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.Error as err:
            raise CacheError(self._explain(err)) from err

    def _not_sqlite(self) -> str:
        return (f"answer cache {self.path} is a file that is not a SQLite database (it does not begin with "
                "SQLite's header), so not one this cache wrote: give `path` a new file name (or remove that "
                "file yourself); nothing was moved or deleted")

    def _explain(self, err: BaseException) -> str:
        name = _error_name(err)
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            what = (f"is locked by another process (waited {self.timeout:g} s): let it finish, raise the "
                    "cache's `timeout`, or give this run another path")
        elif name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH", "SQLITE_READONLY")):
            what = f"cannot be opened ({err}): check its and its folder's permissions, or give another path"
        elif name.startswith(("SQLITE_IOERR", "SQLITE_FULL")):
            what = f"cannot be used: {err} (disk full or gone?); free space or give another path"
        elif name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            what = f"is damaged ({err}); move it aside (with its -wal and -shm files) or give another path"
        else:
            what = f"cannot be opened ({name or type(err).__name__}: {err}); give another path"
        return f"answer cache {self.path} {what}; nothing was moved or deleted"

    def _sqlite(self, target: str) -> sqlite3.Connection:
        uri = target.startswith("file:")
        return sqlite3.connect(target, uri=uri, timeout=self.timeout, check_same_thread=False, isolation_level=None)

    def _connect(self) -> sqlite3.Connection:
        conn = self._sqlite(str(self.path))
        try:
            version = self._check(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                         "(key TEXT PRIMARY KEY, value TEXT NOT NULL, checksum TEXT NOT NULL)")
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _check(self, conn: sqlite3.Connection) -> int:
        """The file's layout version, once it is known to be sound and not newer than this one."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CacheError(f"answer cache {self.path} was written by a newer uniner-spacy (layout {version}, "
                             f"this one reads {SCHEMA_VERSION}): upgrade, or give this run another path")
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise _Damaged(ok)
        older = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                            "name LIKE 'answers%' AND name != ?", (TABLE,))]
        if older:
            logger.warning("Answer cache %s holds answers of an older layout (table %s): they are kept but not "
                           "used, so those questions are asked again", self.path, ", ".join(older))
        return version

    def _open_readonly(self) -> sqlite3.Connection:
        """A file this process may not write: hits are served, new answers are not stored."""
        uri = self.path.resolve().as_uri() + "?mode=ro"
        conn = None
        try:
            try:
                conn = self._sqlite(uri)
                self._check(conn)
            except sqlite3.Error:
                if conn is not None:
                    conn.close()
                    conn = None
                if os.access(self.path.parent, os.W_OK):
                    raise
                # a WAL file in a folder no one may write (a read-only mount): SQLite can read it only
                # as immutable, which no writer can contradict there
                conn = self._sqlite(uri + "&immutable=1")
                self._check(conn)
        except sqlite3.Error as err:
            if conn is not None:
                conn.close()
            raise CacheError(self._explain(err)) from err
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self.readonly = True
        has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
        logger.warning("Answer cache %s is read-only here: answers are read from it%s, new ones are not stored",
                       self.path, "" if has_table else " (it has none of this layout)")
        return conn

    def _files(self) -> List[Path]:
        return [self.path] + [Path(str(self.path) + s) for s in _SIDE_FILES]

    def _set_aside(self, err: BaseException) -> None:
        """Rename a damaged file and its -wal/-shm (which belong with it) to `<name>.corrupt-<time>`.

        Not while any process (this one included) holds SQLite locks on them: that one is using
        them, and moving its files would split what it writes. Where that cannot be told (no
        /proc/locks) and -wal/-shm exist, nothing is moved either.
        """
        present = [f for f in self._files() if f.exists()]
        holders = _lock_holders(present)
        if holders or (holders is None and len(present) > 1):
            who = f"process {', '.join(map(str, sorted(holders)))}" if holders else "another process, maybe"
            raise CacheError(f"answer cache {self.path} is damaged ({err}) but in use by {who}: stop it, then "
                             "move the file (with its -wal and -shm) aside or give another path; nothing was moved")
        if not _has_header(self.path):  # (no lock of this process on it to drop by reading it)
            raise CacheError(self._not_sqlite())
        stamp = int(time.time())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while any(Path(str(aside) + s).exists() for s in ("",) + _SIDE_FILES):
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            # the side files first: a process opening the path in between must not pair a new file with the old WAL
            for suffix in _SIDE_FILES:
                side = Path(str(self.path) + suffix)
                if side.exists():
                    os.replace(side, str(aside) + suffix)
            os.replace(self.path, aside)
        except OSError as move_err:
            raise CacheError(f"answer cache {self.path} is damaged ({err}) and could not be moved aside to {aside} "
                             f"({move_err}; its -wal/-shm may be there already): move it yourself or give another "
                             "path") from move_err
        logger.warning("Answer cache %s is damaged (%s): moved aside to %s (with its -wal/-shm, if any) and "
                       "starting afresh", self.path, err, aside)

    # ---------------------------------------------------------------- rows

    @staticmethod
    def key(model_id: str, query: Query) -> str:
        """Everything that changes the answer; `query.label` (which user label it answers for) does not."""
        parts = [TEMPLATE_VERSION, model_id, query.passage, query.entity_type, [list(w) for w in query.words]]
        if query.label_set:  # (only then: the keys of answers asked without it stay as they were)
            parts.append(list(query.label_set))
        return text_sha256(json.dumps(parts))

    def _warn_once(self, kind: str, msg: str, *args: object) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(msg, *args)

    def read(self, keys: Sequence[str]) -> Dict[str, str]:
        """The sound stored values of `keys`; a row that fails its checksum, or a failed read, is a miss."""
        found: Dict[str, str] = {}
        with self.lock:
            try:
                for i in range(0, len(keys), 500):
                    chunk = list(keys[i : i + 500])
                    rows = self.conn.execute(
                        f"SELECT key, value, checksum FROM {TABLE} WHERE key IN ({','.join('?' * len(chunk))})", chunk
                    ).fetchall()
                    for key, value, checksum in rows:
                        if _checksum(key, value) != checksum:
                            self.corrupt_rows += 1
                            continue
                        found[key] = value
            except sqlite3.Error as err:
                if not (self.readonly and "no such table" in str(err)):
                    self._warn_once("read", "Answer cache %s: a read failed (%s); those answers are asked again "
                                    "(further read failures are not reported)", self.path, err)
        return found

    def write(self, items: Dict[str, str]) -> bool:
        """Store values in one transaction; on failure roll back, warn once, count them in `unstored`."""
        if not items:
            return True
        if self.readonly:
            self.unstored += len(items)
            return False
        rows = [(key, value, _checksum(key, value)) for key, value in items.items()]
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?)", rows)
                self.conn.execute("COMMIT")
                return True
            except sqlite3.Error as err:
                self._rollback()
                self.unstored += len(rows)
                self._warn_once("write", "Answer cache %s: could not store %d answers (%s); they are used but not "
                                "cached, so a later run asks them again (`unstored` counts any further ones)",
                                self.path, len(rows), err)
                return False
            except BaseException:  # interrupted mid-write: never leave the connection in a transaction
                self._rollback()
                raise

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite rolled back already (SQLITE_FULL, SQLITE_IOERR do)
                pass

    def get_many(self, keys: Sequence[str]) -> Dict[str, Generation]:
        found: Dict[str, Generation] = {}
        for key, value in self.read(keys).items():
            try:
                data = json.loads(value)
                pieces = [tuple(p) for p in data["logprobs"]] if data.get("logprobs") is not None else None
                found[key] = Generation(text=data["text"], token_logprobs=pieces,
                                        forced=tuple(data.get("forced", ())),
                                        finish_reason=data.get("finish_reason", "stop"))
            except (ValueError, KeyError, TypeError, AttributeError):
                self.corrupt_rows += 1
        return found

    def put_many(self, items: Dict[str, Generation]) -> bool:
        return self.write({key: json.dumps({"text": gen.text, "logprobs": gen.token_logprobs,
                                            "forced": list(gen.forced), "finish_reason": gen.finish_reason})
                           for key, gen in items.items()})

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __len__(self) -> int:
        with self.lock:
            return self.conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]


class CachedBackend:
    """Answers from the cache where it has them; asks the wrapped backend for the rest."""

    def __init__(self, backend: Backend, path: Union[str, Path], timeout: float = 60.0):
        self.backend = backend
        self.cache = AnswerCache(path, timeout=timeout)
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def capacity(self) -> Optional[int]:
        return self.backend.capacity

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
            self.cache.put_many(fresh)  # best effort: a failed write warns, the answers are returned anyway
        return out  # type: ignore[return-value]


@registry.misc("uniner.Cached.v1")
def make_cached_backend(backend: Backend, path: str, timeout: float = 60.0) -> CachedBackend:
    return CachedBackend(backend, path, timeout=timeout)
