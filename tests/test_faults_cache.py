"""The answer cache is best effort and never destroys what is not its own; the teacher never pays for
what it throws away. Real SQLite files, real locks, a real HTTP teacher on 127.0.0.1."""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path

import pytest
from conftest import CANNED_ANSWERS, TINY_FACTS
from fault_server import FaultServer

from uniner_spacy.backends.cache import SCHEMA_VERSION, TABLE, AnswerCache, CachedBackend
from uniner_spacy.backends.canned import CannedBackend
from uniner_spacy.distill import teacher
from uniner_spacy.distill.teacher import TeacherClient
from uniner_spacy.errors import CacheError, UninerError
from uniner_spacy.types import Generation, Query

QUERIES = [Query(p, t, t) for (p, t) in TINY_FACTS]
CACHE_LOG = "uniner_spacy.backends.cache"


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _stats(folder: Path) -> dict:
    """What `_files` tells, without opening a file: closing one would drop this process's SQLite locks."""
    return {p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _warnings(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------- open


def test_a_folder_as_the_path_is_an_error_and_left_alone(tmp_path):
    folder = tmp_path / "c.sqlite"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    with pytest.raises(CacheError, match="c.sqlite is not a file") as info:
        CachedBackend(CannedBackend(CANNED_ANSWERS), folder)
    assert isinstance(info.value, UninerError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.sqlite"]
    assert (folder / "mine.txt").read_text() == "keep me"


# SQLite's header and then what SQLite calls "not a database": a cache file that was damaged
DAMAGED = b"SQLite format 3\x00" + b"this is not a database" * 100


def test_a_damaged_file_with_sqlites_header_is_set_aside_with_its_wal(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    path.write_bytes(DAMAGED)
    Path(str(path) + "-wal").write_bytes(b"old wal")  # a crashed writer's leftovers belong with the file
    Path(str(path) + "-shm").write_bytes(b"old shm")
    cache = AnswerCache(path)
    cache.put_many({"k": Generation("[]")})
    assert cache.get_many(["k"])["k"].text == "[]"
    [aside] = tmp_path.glob("c.sqlite.corrupt-*[0-9]")
    assert aside.read_bytes() == DAMAGED
    assert Path(str(aside) + "-wal").read_bytes() == b"old wal"  # moved, not deleted
    assert Path(str(aside) + "-shm").exists()  # the WAL's index, which SQLite rewrites on reading: moved
    assert any("damaged" in w and str(aside) in w for w in _warnings(caplog))


def _damage_pages(path: Path) -> None:
    """Garbage over every page after the header page: the file opens, quick_check fails."""
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.seek(4096)
        fh.write(os.urandom(size - 4096))


def _filled(path: Path, n: int = 200) -> None:
    cache = AnswerCache(path)
    cache.put_many({f"k{i}": Generation("x" * 200) for i in range(n)})
    cache.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.close()


def test_a_damaged_database_is_set_aside(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    _filled(path)
    _damage_pages(path)
    cache = AnswerCache(path)
    assert len(cache) == 0 and cache.put_many({"k": Generation("[]")})
    assert len(list(tmp_path.glob("c.sqlite.corrupt-*[0-9]"))) == 1
    assert any("damaged" in w for w in _warnings(caplog))


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="tells locks held from /proc/locks")
def test_a_damaged_database_in_use_is_not_touched(tmp_path):
    """Another connection holds it (and its -wal/-shm): moving them would split what it writes."""
    path = tmp_path / "c.sqlite"
    _filled(path)
    other = sqlite3.connect(path)
    other.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # maps the -shm: holds its lock
    _damage_pages(path)
    before = _stats(tmp_path)
    with pytest.raises(CacheError, match=f"in use by process {os.getpid()}"):
        AnswerCache(path)
    assert _stats(tmp_path) == before
    other.close()


def test_a_newer_layout_is_refused_an_older_one_kept_but_not_used(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    AnswerCache(path).close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # written by a newer uniner-spacy: refused, file unchanged
    newer = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = newer.read_bytes()
    with pytest.raises(CacheError, match="newer uniner-spacy"):
        AnswerCache(newer)
    assert newer.read_bytes() == before and not list(tmp_path.glob("newer.sqlite.corrupt-*"))
    # the layout before versions (table `answers`, user_version 0): its rows stay, unused
    old = tmp_path / "old.sqlite"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, checksum TEXT NOT NULL)")
    conn.execute("INSERT INTO answers VALUES ('k', '{\"text\": \"[]\"}', 'x')")
    conn.commit()
    conn.close()
    cache = AnswerCache(old)
    assert any("older layout" in w for w in _warnings(caplog))
    assert cache.get_many(["k"]) == {} and cache.put_many({"k": Generation('["a"]')})
    assert cache.conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 1
    assert cache.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_locked_at_open_is_an_error_and_nothing_moves(tmp_path):
    path = tmp_path / "c.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)  # a rollback-journal file, held exclusively
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(CacheError, match="locked by another process"):
        AnswerCache(path, timeout=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.sqlite", "c.sqlite-journal"]
    holder.execute("ROLLBACK")
    assert len(AnswerCache(path, timeout=0.1)) == 0


# ---------------------------------------------------------------- read-only


def _unprivileged(fn, *args):
    """`fn(*args)` in a forked child that cannot write where it is not allowed (root becomes nobody)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child():
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
        except OSError as err:
            queue.put(("skip", f"cannot drop root: {err}", []))
            return
        try:
            records: list = []
            handler = logging.Handler()
            handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
            logging.getLogger(CACHE_LOG).addHandler(handler)
            queue.put(("ok", fn(*args), records))
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            queue.put(("raised", f"{type(err).__name__}: {err}", []))

    proc = ctx.Process(target=child)
    proc.start()
    result = queue.get(timeout=60)
    proc.join(60)
    if result[0] == "skip":
        pytest.skip(result[1])
    return result


def _read_only_use(path: str):
    cached = CachedBackend(CannedBackend(CANNED_ANSWERS), path)
    answers = cached(QUERIES)
    return {"readonly": cached.cache.readonly, "hits": cached.hits, "misses": cached.misses,
            "answers": [g.text for g in answers], "errors": [g.error for g in answers],
            "unstored": cached.cache.unstored}


@pytest.fixture
def shared_dir():
    """A folder an unprivileged child can enter (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="uniner-ro-"))
    folder.chmod(0o755)
    yield folder
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(folder)


@pytest.mark.parametrize("folder_writable", [False, True])
def test_a_read_only_cache_serves_hits_and_stores_nothing(shared_dir, folder_writable):
    """Read-only use, with a warning: a shared or shipped cache still saves what it holds."""
    path = shared_dir / "c.sqlite"
    writer = CachedBackend(CannedBackend(CANNED_ANSWERS), path)
    writer(QUERIES[:3])
    writer.cache.close()  # WAL mode, closed cleanly: no -wal or -shm left
    expected = [g.text for g in CannedBackend(CANNED_ANSWERS)(QUERIES)]
    path.chmod(0o444)
    shared_dir.chmod(0o777 if folder_writable else 0o555)
    before = _files(shared_dir)
    status, got, logs = _unprivileged(_read_only_use, str(path))
    assert status == "ok", got
    assert got["readonly"] and got["hits"] == 3 and got["misses"] == len(QUERIES) - 3
    assert got["answers"] == expected and got["errors"] == [None] * len(QUERIES)
    assert got["unstored"] == len(QUERIES) - 3
    assert any("read-only" in m for m in logs)
    if not folder_writable:
        assert _files(shared_dir) == before


def test_a_new_cache_in_a_read_only_folder_is_an_error(shared_dir):
    shared_dir.chmod(0o555)
    status, got, _ = _unprivileged(_read_only_use, str(shared_dir / "c.sqlite"))
    assert status == "raised" and got.startswith("CacheError") and "not writable" in got
    assert list(shared_dir.iterdir()) == []


# ---------------------------------------------------------------- failing writes and reads


LONG = '["' + "a very long answer " * 400 + '"]'


def test_a_full_database_warns_once_and_returns_the_answers(tmp_path, caplog):
    cached = CachedBackend(CannedBackend(CANNED_ANSWERS, raw={"long": LONG}), tmp_path / "c.sqlite")
    first = cached(QUERIES[:2])
    conn = cached.cache.conn
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    long = [Query(f"Passage {i}.", "long") for i in range(6)]
    answers = cached(long)
    assert [g.error for g in answers] == [None] * len(long) and [g.text for g in answers] == [LONG] * len(long)
    assert not conn.in_transaction  # rolled back, never left mid-transaction
    cached(long[:2])  # a second failure: counted, not warned again
    warned = [w for w in _warnings(caplog) if "could not store" in w]
    assert len(warned) == 1 and f"store {len(long)} answers" in warned[0] and "full" in warned[0]
    assert cached.cache.unstored == len(long) + 2
    assert [g.text for g in cached(QUERIES[:2])] == [g.text for g in first]  # reads still work
    assert cached.hits == 2


def test_a_locked_database_warns_and_recovers(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    cached = CachedBackend(CannedBackend(CANNED_ANSWERS), path, timeout=0.1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    answers = cached(QUERIES)
    assert [g.error for g in answers] == [None] * len(QUERIES)
    assert not cached.cache.conn.in_transaction and cached.cache.unstored == len(QUERIES)
    assert any("could not store" in w and "locked" in w for w in _warnings(caplog))
    other.execute("ROLLBACK")
    cached(QUERIES)  # stored now
    assert len(cached.cache) == len(QUERIES)


def test_failed_reads_are_misses(tmp_path, caplog):
    cached = CachedBackend(CannedBackend(CANNED_ANSWERS), tmp_path / "c.sqlite")
    cached(QUERIES)
    sqlite3.connect(tmp_path / "c.sqlite").execute(f"DROP TABLE {TABLE}")  # someone removed it under us
    answers = cached(QUERIES)
    assert [g.error for g in answers] == [None] * len(QUERIES) and cached.misses == 2 * len(QUERIES)
    assert any("read failed" in w for w in _warnings(caplog))


# ---------------------------------------------------------------- keys and concurrency


def test_the_key_includes_the_token_offsets_a_grammar_depends_on(tmp_path):
    q = Query("Alice Smith works for Acme Corp in Berlin.", "person", "person", ((0, 5), (6, 11)))
    assert AnswerCache.key("m", q) != AnswerCache.key("m", Query(q.passage, q.entity_type, q.label))
    inner = CannedBackend(CANNED_ANSWERS)
    cached = CachedBackend(inner, tmp_path / "c.sqlite")
    cached([q])
    cached([Query(q.passage, q.entity_type, q.label, ((0, 11),))])
    cached([q])
    assert len(inner.asked) == 2 and cached.hits == 1


def test_truncated_answers_stay_marked(tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    cache.put_many({"k": Generation('["a"', finish_reason="length")})
    assert cache.get_many(["k"])["k"].finish_reason == "length"


def _hammer(path: str, name: str, n: int) -> int:
    cache = AnswerCache(path)
    for i in range(n):
        cache.put_many({f"{name}-{i}-{j}": Generation(f"[{i}]") for j in range(5)})
    return cache.unstored


def test_concurrent_writers_all_land(tmp_path):
    """Two processes and two connections of this one, writing at once (WAL and a busy timeout)."""
    path = str(tmp_path / "c.sqlite")
    AnswerCache(path).close()
    procs = [multiprocessing.get_context("fork").Process(target=_hammer, args=(path, f"p{n}", 40)) for n in range(2)]
    for p in procs:
        p.start()
    unstored = []
    threads = [threading.Thread(target=lambda n=n: unstored.append(_hammer(path, f"t{n}", 40))) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0] and unstored == [0, 0]
    assert len(AnswerCache(path)) == 4 * 40 * 5


# ---------------------------------------------------------------- the teacher


PASSAGES = [(f"p{i}", f"Passage number {i} mentions Paris.") for i in range(12)]


def _client(url: str, path: Path, **kw) -> TeacherClient:
    return TeacherClient("teacher-x", base_url=url, api_key="test", cache_path=path, max_retries=0, timeout=10,
                         **kw)


class _Breaks:
    """A progress bar whose first update raises: an error in the main loop, after one answer."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def update(self, n):
        raise self.exc

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_interrupted_teacher_run_sends_nothing_more_and_keeps_what_arrived(tmp_path, monkeypatch, exc):
    monkeypatch.setattr(teacher, "_progress", lambda total, done, enabled: _Breaks(exc))
    path = tmp_path / "t.sqlite"
    with FaultServer({}, delay=0.2, reply="[]") as server:
        with pytest.raises(type(exc)):
            _client(server.url, path, workers=2).annotate(PASSAGES)
        sent = server.requests
        # the first answer, and at most what the two workers had already sent; the queued ones never go out
        assert 1 <= sent <= 4
        assert len(teacher.TeacherCache(path)) == sent  # every answer that arrived is cached
        monkeypatch.setattr(teacher, "_progress", lambda total, done, enabled: None)
        server.delay = 0.0
        client = _client(server.url, path, workers=2)
        answers = client.annotate(PASSAGES)
        assert server.requests == len(PASSAGES)  # nothing is paid twice
    assert client.usage.cache_hits == sent and [a.error for a in answers] == [None] * len(PASSAGES)


def test_the_teacher_key_names_the_server(tmp_path):
    path = tmp_path / "t.sqlite"
    with FaultServer({}, reply="[]") as one, FaultServer({}, reply="[]") as two:
        _client(one.url, path, progress=False).annotate(PASSAGES[:3])
        _client(two.url, path, progress=False).annotate(PASSAGES[:3])
        assert one.requests == two.requests == 3  # another server is another teacher
        # a server on a new port each run keeps its answers under a stable name
        _client(one.url, path, progress=False, server_id="local:teacher").annotate(PASSAGES[:3])
        client = _client(two.url, path, progress=False, server_id="local:teacher")
        client.annotate(PASSAGES[:3])
        assert one.requests == 6 and two.requests == 3 and client.usage.cache_hits == 3


def test_a_failing_teacher_cache_keeps_the_answers(tmp_path, caplog):
    with FaultServer({}, reply=LONG) as server:
        client = _client(server.url, tmp_path / "t.sqlite", progress=False)
        conn = client.cache.conn  # type: ignore[union-attr]
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        answers = client.annotate(PASSAGES[:3])
    assert [a.text for a in answers] == [LONG] * 3 and client.usage.requests == 3
    assert any("could not store" in w for w in _warnings(caplog))
