import multiprocessing
import sqlite3

import spacy

from conftest import TINY_FACTS
from uniner_spacy.backends.hf.backend import HFBackend
from uniner_spacy.backends.cache import AnswerCache, CachedBackend
from uniner_spacy.types import Generation, Query

QUERIES = [Query(p, t, t) for (p, t) in TINY_FACTS]


class Counting:
    """Wraps the real tiny model and counts what reaches it."""

    def __init__(self, backend):
        self.backend, self.asked = backend, 0
        self.model_id = backend.model_id
        self.token_offsets = backend.token_offsets

    def __call__(self, queries, *, mark_forced=False):
        self.asked += len(queries)
        return self.backend(queries, mark_forced=mark_forced)


def test_second_run_is_served_from_cache(tiny_model_dir, tmp_path):
    inner = Counting(HFBackend(str(tiny_model_dir), max_new_tokens=24))
    first = CachedBackend(inner, tmp_path / "c.sqlite")(QUERIES)
    again = CachedBackend(inner, tmp_path / "c.sqlite")(QUERIES)
    assert inner.asked == len(QUERIES)
    assert [g.text for g in first] == [g.text for g in again]
    assert again[0].token_logprobs == first[0].token_logprobs


def test_key_depends_on_model_and_question():
    q = Query("Text.", "person")
    assert AnswerCache.key("m1", q) != AnswerCache.key("m2", q)
    assert AnswerCache.key("m1", q) != AnswerCache.key("m1", Query("Text.", "location"))
    assert AnswerCache.key("m1", q) == AnswerCache.key("m1", Query("Text.", "person", "other label"))


def test_errors_are_not_cached(tmp_path):
    class Failing:
        model_id = "f"

        def token_offsets(self, text):
            return []

        def __call__(self, queries, *, mark_forced=False):
            return [Generation("", error="timeout") for _ in queries]

    cached = CachedBackend(Failing(), tmp_path / "c.sqlite")
    cached(QUERIES[:2])
    assert len(cached.cache) == 0


def test_corrupt_file_is_set_aside(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    cache = AnswerCache(path)
    cache.put_many({"k": Generation("[]")})
    assert cache.get_many(["k"])["k"].text == "[]"
    assert list(tmp_path.glob("c.sqlite.corrupt-*"))


def test_damaged_row_is_a_miss(tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    cache.put_many({"k": Generation('["a"]')})
    cache.conn.execute("UPDATE answers SET value = ? WHERE key = 'k'", ('{"text": "[\\"b\\"]"}',))
    assert cache.get_many(["k"]) == {} and cache.corrupt_rows == 1


def _writer(path, n):
    cache = AnswerCache(path)
    for i in range(20):
        cache.put_many({f"{n}-{i}": Generation(f"[{i}]")})


def test_concurrent_processes(tmp_path):
    path = tmp_path / "c.sqlite"
    procs = [multiprocessing.get_context("fork").Process(target=_writer, args=(path, n)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(AnswerCache(path)) == 60


def test_cached_backend_in_config(tiny_model_dir, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person"], "backend": {
        "@misc": "uniner.Cached.v1", "path": str(tmp_path / "c.sqlite"),
        "backend": {"@misc": "uniner.HF.v1", "model": str(tiny_model_dir), "max_new_tokens": 24}}})
    text = "Bob Jones flew to Paris with Alice Smith."
    first = [(e.text, e.label_) for e in nlp(text).ents]
    assert first == [(e.text, e.label_) for e in nlp(text).ents]
    assert nlp.get_pipe("uniner").backend.hits == 1


def test_model_cache_keeps_the_first_complete_copy(tiny_model_dir, tmp_path):
    """A second writer (two processes merging the same adapter) must not pull the
    files from under the first, which may be loading them already."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from uniner_spacy.weights import _atomic_save

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    target = tmp_path / "merged"
    _atomic_save(target, model, tok)
    first = (target / "config.json").stat().st_ino
    _atomic_save(target, model, tok)
    assert (target / "config.json").stat().st_ino == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]  # the loser's copy is gone
    (target / ".complete").unlink()  # a stale copy is replaced
    _atomic_save(target, model, tok)
    assert (target / ".complete").exists() and (target / "config.json").stat().st_ino != first
