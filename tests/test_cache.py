import multiprocessing

import spacy
from conftest import CANNED_ANSWERS, TINY_FACTS, canned

from uniner_spacy.backends.cache import TABLE, AnswerCache, CachedBackend
from uniner_spacy.backends.canned import CannedBackend
from uniner_spacy.types import Generation, Query

QUERIES = [Query(p, t, t) for (p, t) in TINY_FACTS]


def test_second_run_is_served_from_cache(tmp_path):
    inner = CannedBackend(CANNED_ANSWERS)  # counts what reaches it
    first = CachedBackend(inner, tmp_path / "c.sqlite")(QUERIES)
    again = CachedBackend(inner, tmp_path / "c.sqlite")(QUERIES)
    assert len(inner.asked) == len(QUERIES)
    assert [g.text for g in first] == [g.text for g in again]
    assert again[0].token_logprobs == first[0].token_logprobs


def test_a_changed_model_or_marks_are_misses(tmp_path):
    """Keys follow the model id, and answers with forced marks are kept apart from those without."""
    path = tmp_path / "c.sqlite"
    CachedBackend(CannedBackend(CANNED_ANSWERS), path)(QUERIES)
    other = CannedBackend({"person": ["Alice Smith"]})
    cached = CachedBackend(other, path)
    cached(QUERIES)
    assert cached.misses == len(QUERIES) and len(other.asked) == len(QUERIES)
    inner = CannedBackend(CANNED_ANSWERS, forced=["Berlin"])
    cached = CachedBackend(inner, path)
    plain = cached(QUERIES)
    marked = cached(QUERIES, mark_forced=True)  # an unmarked answer cannot say what was forced
    assert cached.misses == 2 * len(QUERIES) and cached.hits == 0
    assert all(g.forced == () for g in plain) and ("Berlin",) in [g.forced for g in marked]
    again = CachedBackend(inner, path)
    assert [g.forced for g in again(QUERIES, mark_forced=True)] == [g.forced for g in marked]
    assert again.hits == len(QUERIES)


def test_key_depends_on_model_and_question():
    q = Query("Text.", "person")
    assert AnswerCache.key("m1", q) != AnswerCache.key("m2", q)
    assert AnswerCache.key("m1", q) != AnswerCache.key("m1", Query("Text.", "location"))
    assert AnswerCache.key("m1", q) == AnswerCache.key("m1", Query("Text.", "person", "other label"))
    # a label set shown changes the prompt; none shown keeps the keys of earlier releases
    assert AnswerCache.key("m1", q) != AnswerCache.key("m1", Query("Text.", "person", label_set=("person",)))
    assert AnswerCache.key("m1", q) == "38eff272804babd3eba9959369a5a83a48af70a13e343417dd810555cb7a8bb1"


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
    path.write_bytes(b"SQLite format 3\x00" + b"this is not a database" * 100)  # SQLite's header: a damaged cache
    cache = AnswerCache(path)
    cache.put_many({"k": Generation("[]")})
    assert cache.get_many(["k"])["k"].text == "[]"
    assert list(tmp_path.glob("c.sqlite.corrupt-*"))


def test_damaged_row_is_a_miss(tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    cache.put_many({"k": Generation('["a"]')})
    cache.conn.execute(f"UPDATE {TABLE} SET value = ? WHERE key = 'k'", ('{"text": "[\\"b\\"]"}',))
    assert cache.get_many(["k"]) == {} and cache.corrupt_rows == 1
    cache.put_many({"k": Generation('["a"]')})  # asked again, the row is replaced
    assert cache.get_many(["k"])["k"].text == '["a"]'


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


def test_cached_backend_in_config(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person"], "backend": {
        "@misc": "uniner.Cached.v1", "path": str(tmp_path / "c.sqlite"), "backend": canned()}})
    text = "Bob Jones flew to Paris with Alice Smith."
    first = [(e.text, e.label_) for e in nlp(text).ents]
    assert first == [(e.text, e.label_) for e in nlp(text).ents] == [("Bob Jones", "person"), ("Alice Smith", "person")]
    cached = nlp.get_pipe("uniner").backend
    assert cached.hits == 1 and cached.misses == 1 and len(cached.backend.asked) == 1


def test_model_cache_keeps_the_first_complete_copy(tmp_path):
    """A second writer (two processes merging the same adapter) must not pull the
    files from under the first, which may be loading them already."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from uniner_spacy.weights import _atomic_save

    # what is saved does not matter here, only how: an untrained LLaMA and a tokenizer of a few kilobytes
    model = LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]")))
    target = tmp_path / "merged"
    _atomic_save(target, model, tok)
    first = (target / "config.json").stat().st_ino
    _atomic_save(target, model, tok)
    assert (target / "config.json").stat().st_ino == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]  # the loser's copy is gone
    (target / ".complete").unlink()  # a stale copy is replaced
    _atomic_save(target, model, tok)
    assert (target / ".complete").exists() and (target / "config.json").stat().st_ino != first
