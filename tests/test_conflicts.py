"""Conflict resolution with the real MiniLM model; provenance consolidation."""
import pytest
import spacy
from conftest import canned
from spacy.util import registry

import uniner_spacy  # noqa: F401
from uniner_spacy.pipeline.resolve import resolve
from uniner_spacy.stages.conflicts import ConflictResolver, conflict_groups, consolidate
from uniner_spacy.stages.embeddings import shared_embedder
from uniner_spacy.types import Candidate as C

TEXT = "Paris Hilton flew to Paris on Monday."


@pytest.fixture(scope="module")
def doc():
    return spacy.blank("en")(TEXT)


def test_conflict_groups_chain_overlaps_with_several_labels():
    cands = [C(0, 12, "person"), C(0, 5, "location"), C(21, 26, "location"), C(21, 26, "person"),
             C(30, 36, "date")]
    assert sorted(map(sorted, conflict_groups(cands))) == [[0, 1], [2, 3]]
    assert conflict_groups([C(0, 5, "a"), C(0, 5, "a")]) == []


def test_same_span_two_labels_context_decides(doc):
    stage = ConflictResolver(weight=0.5, embedder=shared_embedder())
    cands = [C(21, 26, "person", 0.8), C(21, 26, "location", 0.8), C(30, 36, "date", 0.7)]
    out = stage(doc, cands)
    by = {(c.start, c.label): c.score for c in out}
    assert by[(21, "location")] > by[(21, "person")]
    assert by[(30, "date")] == 0.7  # no conflict, untouched
    assert len(out) == 3  # runners-up are kept for doc.spans


def test_descriptions_steer_the_choice(doc):
    # with a description that fits a hotel heiress, `person` wins the first `Paris Hilton`
    stage = ConflictResolver(weight=1.0, embedder=shared_embedder(), descriptions={
        "person": "a celebrity, heiress or socialite", "location": "a city or country"})
    out = stage(doc, [C(0, 12, "person", 0.5), C(0, 12, "location", 0.5)])
    assert out[0].score > out[1].score


def test_overlap_policy_uses_the_rescored_candidates(doc):
    stage = ConflictResolver(weight=0.9, embedder=shared_embedder())
    cands = [C(21, 26, "person", 0.9), C(21, 26, "location", 0.6)]
    assert resolve(cands, "score")[0].label == "person"
    assert resolve(stage(doc, cands), "score")[0].label == "location"



def test_a_batch_of_docs_scores_as_each_doc_alone(doc):
    """`pipe` embeds every doc's competing mentions in one encoder call; the scores are the ones of
    one call per doc."""
    stage = ConflictResolver(weight=0.5, embedder=shared_embedder())
    other = spacy.blank("en")("Jordan met Washington in Jordan.")
    docs = [doc, spacy.blank("en")("Nothing competes here."), other]
    lists = [[C(21, 26, "person", 0.8), C(21, 26, "location", 0.8), C(30, 36, "date", 0.7)],
             [C(0, 7, "misc", 0.5)],
             [C(0, 6, "person", 0.6), C(0, 6, "location", 0.7), C(11, 21, "person", 0.9),
              C(11, 21, "location", 0.4), C(25, 31, "location", 0.9)]]
    together = stage.pipe(docs, lists)
    alone = [stage(d, cands) for d, cands in zip(docs, lists)]
    assert [[c.label for c in cs] for cs in together] == [[c.label for c in cs] for cs in alone]
    for a, b in zip(together, alone):
        assert [c.score for c in a] == pytest.approx([c.score for c in b], abs=1e-5)
    assert together[1] == lists[1]

def test_consolidate_keeps_every_question():
    cands = [C(0, 5, "location", 0.6, "location"), C(0, 5, "location", 0.9, "place"),
             C(0, 5, "person", 0.4, "person")]
    out = consolidate(cands, bonus=0.05)
    assert [(c.label, c.source) for c in out] == [("location", "place | location"), ("person", "person")]
    assert out[0].score == pytest.approx(0.95)


def test_registered_stage_in_the_component():
    assert callable(registry.misc.get("uniner.Conflicts.v1")(weight=0.3))
    # `Paris` answered as a person too, and more surely (a raw answer scores 1.0): context must decide
    backend = canned(raw={"person": '["Bob Jones", "Paris", "Alice Smith"]'})
    labels = {}
    for stages in ({}, {"consolidate": {"@misc": "uniner.Consolidate.v1"},
                        "conflicts": {"@misc": "uniner.Conflicts.v1", "weight": 0.5}}):
        nlp = spacy.blank("en")
        nlp.add_pipe("uniner", config={
            "labels": ["person", "location"], "overlap_policy": "score", "backend": backend, "stages": stages})
        doc = nlp("Bob Jones flew to Paris with Alice Smith.")
        labels[bool(stages)] = [e.label_ for e in doc.ents]
        assert {(s.text, s.label_) for s in doc.spans["uniner"]} >= {("Paris", "person"), ("Paris", "location")}
    assert labels == {False: ["person", "person", "person"], True: ["person", "location", "person"]}
