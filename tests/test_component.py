import functools

import pytest
import spacy
from spacy.tokens import Doc

from conftest import TINY_FACTS

LABELS = ["person", "organization", "location"]
TEXTS = sorted({p for p, _ in TINY_FACTS})


def make_nlp(model_dir, **cfg):
    nlp = spacy.blank("en")
    config = {"labels": LABELS, "backend": {"@misc": "uniner.HF.v1", "model": str(model_dir), "max_new_tokens": 24}}
    config.update(cfg)
    nlp.add_pipe("uniner", config=config)
    return nlp


def ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def test_tiny_model_answers_are_known(tiny_model_dir):
    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.types import Query

    backend = HFBackend(str(tiny_model_dir), max_new_tokens=24)
    queries = [Query(p, t, t) for (p, t) in TINY_FACTS]
    answers = [g.text.strip() for g in backend(queries)]
    assert answers == list(TINY_FACTS.values())


def test_component_end_to_end(tiny_model_dir):
    nlp = make_nlp(tiny_model_dir)
    doc = nlp("Bob Jones flew to Paris with Alice Smith.")
    assert ents(doc) == [("Bob Jones", "person"), ("Paris", "location"), ("Alice Smith", "person")]
    assert all(0.0 <= e._.uniner_score <= 1.0 for e in doc.ents)
    stats = doc._.uniner_stats
    assert stats["queries"] == 3 and stats["parse_failures"] == 0
    assert stats["unaligned"] == [["location", "Atlantis"]]  # hallucination kept in the stats
    assert {(s.text, s.label_) for s in doc.spans["uniner"]} == {
        ("Bob Jones", "person"), ("Paris", "location"), ("Alice Smith", "person")
    }


def test_pipe_equals_one_by_one(tiny_model_dir):
    nlp = make_nlp(tiny_model_dir)
    texts = TEXTS * 3 + ["", "   "]
    piped = [ents(d) for d in nlp.pipe(texts, batch_size=4)]
    single = [ents(nlp(t)) for t in texts]
    assert piped == single
    assert piped[-1] == [] and piped[-2] == []


def test_to_disk_from_disk_round_trip(tiny_model_dir, tmp_path):
    nlp = make_nlp(tiny_model_dir)
    nlp.get_pipe("uniner").add_label("date")
    nlp.to_disk(tmp_path / "pipe")
    nlp2 = spacy.load(tmp_path / "pipe")
    assert nlp2.get_pipe("uniner").labels == ("person", "organization", "location", "date")
    assert [ents(d) for d in nlp2.pipe(TEXTS)] == [ents(d) for d in nlp.pipe(TEXTS)]


def test_config_assembles(tiny_model_dir):
    nlp = make_nlp(tiny_model_dir)
    config = nlp.config
    nlp2 = spacy.util.load_model_from_config(config, auto_fill=True)
    assert nlp2.pipe_names == ["uniner"]
    assert nlp2.get_pipe("uniner").labels == tuple(LABELS)


def test_labels_with_descriptions(tiny_model_dir):
    nlp = make_nlp(tiny_model_dir, labels={"person": "A human being.", "location": None})
    assert nlp.get_pipe("uniner").labels == ("person", "location")
    nlp2 = make_nlp(tiny_model_dir, labels={"person": "A human being."}, question_mode="both")
    assert nlp2.get_pipe("uniner").entity_type("person") == "person (A human being)"


@pytest.mark.parametrize("labels", [[], ["person", "Person"], [""], "person"])
def test_bad_labels_fail_at_construction(tiny_model_dir, labels):
    with pytest.raises(ValueError):
        make_nlp(tiny_model_dir, labels=labels)


def test_keep_existing_ents(tiny_model_dir):
    nlp = make_nlp(tiny_model_dir, keep_existing_ents=True)
    doc = nlp.make_doc("Bob Jones flew to Paris with Alice Smith.")
    doc.ents = [doc.char_span(0, 9, label="CUSTOMER")]
    doc = nlp.get_pipe("uniner")(doc)
    assert ents(doc)[0] == ("Bob Jones", "CUSTOMER")
    assert ("Paris", "location") in ents(doc)


def test_huge_and_foreign_docs_do_not_crash(tiny_model_dir):
    nlp = make_nlp(tiny_model_dir, labels=["person"])
    huge = "Alice Smith works for Acme Corp in Berlin. " * 2400  # ~100,000 characters
    comp = nlp.get_pipe("uniner")
    doc = nlp.make_doc(huge)
    passages = comp.passages(doc)
    assert len(passages) > 100 and all(p.n_tokens <= 256 for p in passages)
    assert passages[-1].start + len(passages[-1].text) == len(huge.rstrip())
    foreign = nlp("Владимир живёт в Москве. 東京に住んでいます。")
    assert foreign._.uniner_stats["queries"] == 1
    assert foreign._.uniner_stats["backend_errors"] == 0


def test_queries_carry_the_docs_token_offsets(tiny_model_dir):
    """The grammar bounds mentions by the doc's own tokens, so the backend must be given them."""

    class Recording:  # the real backend, with the queries it was asked kept
        def __init__(self, backend):
            self.backend, self.asked = backend, []

            self.model_id = backend.model_id
            self.token_offsets = backend.token_offsets

        def __call__(self, queries, *, mark_forced=False):
            self.asked.extend(queries)
            return self.backend(queries, mark_forced=mark_forced)

    nlp = make_nlp(tiny_model_dir, labels=["person", "location"])
    comp = nlp.get_pipe("uniner")
    comp.backend = Recording(comp.backend)
    doc = nlp("Bob Jones flew to Paris with Alice Smith.")
    assert len(comp.backend.asked) == 2
    assert all(q.words == tuple((t.idx, t.idx + len(t)) for t in doc) for q in comp.backend.asked)
    assert ("Paris", "location") in ents(doc)


def test_prefix_sharing_equals_unshared_token_for_token(tiny_model_dir):
    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.types import Query

    queries = [Query(p, t, t) for (p, t) in TINY_FACTS] + [Query(TEXTS[0], "work of art", "x")]
    plain = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=4, prefix_sharing=False)(queries)
    shared = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=4, prefix_sharing=True)(queries)
    assert [g.text for g in shared] == [g.text for g in plain]
    assert [t for g in shared for t, _ in g.token_logprobs] == [t for g in plain for t, _ in g.token_logprobs]
    # passages of three lengths prefilled one run each (padded to its own longest), then stacked
    queries += [Query("Carol, who met Alice Smith in Berlin last year, now works for Acme Corp too.", "person", "y")]
    plain = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=64, prefix_sharing=False)(queries)
    runs = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=64, prefix_sharing=True)
    runs._prefill_passages = functools.partial(runs._prefill_passages, chunk=1)
    got = runs(queries)
    assert [g.text for g in got] == [g.text for g in plain]
    assert [lp for g in got for _, lp in g.token_logprobs] == pytest.approx(
        [lp for g in plain for _, lp in g.token_logprobs], abs=1e-4)
