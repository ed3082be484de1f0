"""Precision check against the real packaged en_core_web_sm pipeline."""
import pytest
import spacy
from conftest import canned
from spacy.util import registry

import uniner_spacy  # noqa: F401
from uniner_spacy.stages.precision import PrecisionCheck, load_ner
from uniner_spacy.types import Candidate as C

TEXT = "Barack Obama visited Berlin on Monday with Microsoft engineers."


@pytest.fixture(scope="module")
def ner():
    return load_ner("default")


@pytest.fixture(scope="module")
def doc():
    return spacy.blank("en")(TEXT)


def span(text, label, score=0.5):
    start = TEXT.index(text)
    return C(start, start + len(text), label, score)


def test_the_packaged_pipeline_loads_with_only_ner(ner):
    assert "ner" in ner.pipe_names and "parser" not in ner.pipe_names
    assert {"Barack Obama", "Berlin", "Monday"} <= {e.text for e in ner(TEXT).ents}


def test_rescore_boosts_agreement_and_lowers_conflicts(ner, doc):
    stage = PrecisionCheck(ner, mode="rescore", boost=0.2, penalty=0.3, missing_penalty=0.1)
    cands = [span("Barack Obama", "person"), span("Berlin", "person"), span("Obama", "person"),
             span("engineers", "person"), span("engineers", "profession")]
    out = {(TEXT[c.start:c.end], c.label): round(c.score, 3) for c in stage(doc, cands)}
    assert out == {("Barack Obama", "person"): 0.7,  # agree
                   ("Berlin", "person"): 0.2,  # the NER says GPE: conflict
                   ("Obama", "person"): 0.6,  # partial: inside a PERSON
                   ("engineers", "person"): 0.4,  # missing
                   ("engineers", "profession"): 0.5}  # label not mapped: untouched


def test_filter_mode_drops_conflicts(ner, doc):
    stage = PrecisionCheck(ner, mode="filter", drop_missing=True)
    out = stage(doc, [span("Berlin", "location"), span("Berlin", "person"), span("engineers", "person"),
                      span("Monday", "date")])
    assert [(TEXT[c.start:c.end], c.label) for c in out] == [("Berlin", "location"), ("Monday", "date")]


def test_custom_mapping_is_checked_against_the_ner_labels(ner):
    with pytest.raises(ValueError, match=r"mapping\['city'\] names \['CITY'\]"):
        PrecisionCheck(ner, {"city": ["CITY"]})
    with pytest.raises(ValueError, match="mode must be one of"):
        PrecisionCheck(ner, mode="drop")


def test_registered_stage_in_the_component():
    stage = registry.misc.get("uniner.PrecisionCheck.v1")(mode="filter")
    assert isinstance(stage, PrecisionCheck)
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={
        "labels": ["person", "location", "organization"],
        "backend": canned(),
        "stages": {
            "check": {"@misc": "uniner.PrecisionCheck.v1", "mode": "rescore", "boost": 0.0,
                      "penalty": 1.0}},
    })
    doc = nlp("Alice Smith works for Acme Corp in Berlin.")
    scores = {s.text: s._.uniner_score for s in doc.spans["uniner"]}
    assert set(scores) == {"Alice Smith", "Acme Corp", "Berlin"}
