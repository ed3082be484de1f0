"""The canned backend (`uniner.Canned.v1`), the test double the orchestration tests stand on."""
import json

import spacy
from conftest import CANNED_ANSWERS, TINY_FACTS, canned
from spacy.util import registry

import uniner_spacy  # noqa: F401
from uniner_spacy.backends.base import Backend
from uniner_spacy.backends.canned import CannedBackend, make_canned_backend
from uniner_spacy.questions.parsing import parse_answer
from uniner_spacy.types import Query

TEXT = "Bob Jones flew to Paris with Alice Smith."


def test_registered_and_a_backend():
    assert registry.misc.get("uniner.Canned.v1") is make_canned_backend
    backend = registry.resolve({"b": canned(errors=["date"])})["b"]
    assert isinstance(backend, CannedBackend) and isinstance(backend, Backend)
    assert backend.answers == CANNED_ANSWERS and backend.errors == {"date"}


def test_answers_only_mentions_in_the_passage():
    backend = CannedBackend({"person": ["Alice Smith", "Carol King", "Bob Jones"], "location": ["Atlantis"]})
    gens = backend([Query(TEXT, "person"), Query(TEXT, "location"), Query(TEXT, "date")])
    assert [json.loads(g.text) for g in gens] == [["Alice Smith", "Bob Jones"], [], []]
    assert all(g.error is None and g.token_logprobs == [(g.text, backend.score)] for g in gens)
    assert backend.calls == [(3, False)] and [q.entity_type for q in backend.asked] == ["person", "location", "date"]


def test_knows_the_tiny_models_facts_but_its_hallucination():
    """conftest's table stands for TINY_FACTS, so a test may swap the tiny model for it."""
    backend = CannedBackend(CANNED_ANSWERS)
    for (passage, etype), answer in TINY_FACTS.items():
        expected = [m for m in parse_answer(answer).mentions if m in passage]
        assert json.loads(backend.answer(Query(passage, etype)).text) == expected


def test_raw_answers_verbatim_and_forced_marks_on_request():
    backend = CannedBackend({"person": ["Bob Jones", "Alice Smith"]}, raw={"location": ' ["Paris", '},
                            forced=["Alice Smith"])
    assert backend([Query(TEXT, "location")])[0].text == ' ["Paris", '
    assert backend([Query(TEXT, "person")])[0].forced == ()  # marks are opt-in
    assert backend([Query(TEXT, "person")], mark_forced=True)[0].forced == ("Alice Smith",)
    assert backend.calls[-2:] == [(1, False), (1, True)]


def test_errors_are_recorded_not_written_as_no_entities():
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "organization", "location"], "stages": {},
                                   "backend": canned(errors=["person"], raw={"organization": "Sure! Acme"})})
    docs = list(nlp.pipe([TEXT, "Alice Smith works for Acme Corp in Berlin."]))
    for doc in docs:
        stats = doc._.uniner_stats
        assert stats["backend_errors"] == 1 and stats["parse_failures"] == 1 and stats["queries"] == 3
        assert "person" not in {e.label_ for e in doc.ents}
    # the other types' answers are still written
    assert [(e.text, e.label_) for e in docs[0].ents] == [("Paris", "location")]
    assert [(e.text, e.label_) for e in docs[1].ents] == [("Berlin", "location")]


def test_model_id_follows_the_table():
    ids = {CannedBackend().model_id, CannedBackend(CANNED_ANSWERS).model_id,
           CannedBackend({"person": ["Bob Jones"]}).model_id, CannedBackend(raw={"person": "[]"}).model_id,
           CannedBackend(errors=["person"]).model_id, CannedBackend(score=-1.0).model_id,
           CannedBackend(forced=["Bob Jones"]).model_id}
    assert len(ids) == 7 and all(i.startswith("canned:") for i in ids)
    assert CannedBackend(dict(CANNED_ANSWERS)).model_id == CannedBackend(CANNED_ANSWERS).model_id
