"""`stages` runs exactly the stages listed: `{}` is none, unset is the documented default.

A dict default would be merged with the user's dict by confection, so `{}` used to come back as
`{"conflicts": ...}` and `{"rules": ...}` ran conflicts too. These go through `nlp.add_pipe` and a
config file, as a user would.
"""
import spacy

from uniner_spacy.pipeline.component import DEFAULT_STAGES
from uniner_spacy.stages.conflicts import ConflictResolver
from uniner_spacy.stages.rules import Rules

TEXT = "Paris Hilton flew to Paris."
# both labels claim `Paris Hilton`: a conflict the default stage would re-score
CANNED = {"@misc": "uniner.Canned.v1",
          "answers": {"person": ["Paris Hilton"], "location": ["Paris", "Paris Hilton"]}}


def pipe(**cfg):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "location"], "backend": CANNED, **cfg})
    return nlp


def stage_types(nlp):
    return {name: type(stage) for name, stage in nlp.get_pipe("uniner").stages.items()}


def test_unset_means_the_documented_defaults():
    nlp = pipe()
    assert list(DEFAULT_STAGES) == ["conflicts"]
    assert stage_types(nlp) == {"conflicts": ConflictResolver}
    assert nlp.config["components"]["uniner"]["stages"] is None


def test_empty_dict_means_no_stage():
    nlp = pipe(stages={})
    assert stage_types(nlp) == {}
    assert nlp.config["components"]["uniner"]["stages"] == {}
    doc = nlp(TEXT)
    # without conflict resolution both readings of `Paris Hilton` stay candidates, with equal scores
    # (before the shipped calibration, which maps person and location each its own way)
    group = doc.spans["uniner"]
    calibration = nlp.get_pipe("uniner").calibration
    spans = {(s.text, s.label_): score for s, score in zip(group, group.attrs["scores"])}
    raw = {(s.text, s.label_): s._.uniner_raw_score for s in group}
    assert raw[("Paris Hilton", "person")] == raw[("Paris Hilton", "location")]
    if calibration is None:
        assert spans[("Paris Hilton", "person")] == spans[("Paris Hilton", "location")]
    else:
        for label in ("person", "location"):
            assert spans[("Paris Hilton", label)] == calibration(raw[("Paris Hilton", label)], label)


def test_listed_stages_are_all_that_run():
    nlp = pipe(stages={"rules": {"@misc": "uniner.Rules.v1", "path": "default"}})
    assert stage_types(nlp) == {"rules": Rules}
    both = pipe(stages={"conflicts": {"@misc": "uniner.Conflicts.v1"},
                        "rules": {"@misc": "uniner.Rules.v1", "path": "default"}})
    assert stage_types(both) == {"conflicts": ConflictResolver, "rules": Rules}
    assert list(both.get_pipe("uniner").stages) == ["conflicts", "rules"]  # in the order given


def test_the_same_through_a_config_file(tmp_path):
    for stages, expected in (({}, {}), ({"rules": {"@misc": "uniner.Rules.v1", "path": "default"}}, {"rules": Rules}),
                             (None, {"conflicts": ConflictResolver})):
        cfg = pipe() if stages is None else pipe(stages=stages)
        path = tmp_path / "config.cfg"
        cfg.config.to_disk(path)
        nlp = spacy.util.load_model_from_config(spacy.util.load_config(path), auto_fill=True)
        assert stage_types(nlp) == expected, stages


def test_default_stage_changes_the_output():
    """The default conflict stage is really on by default and really off with `{}`."""
    on_doc, off_doc = pipe()(TEXT), pipe(stages={})(TEXT)
    on = {(s.text, s.label_): score for s, score in zip(on_doc.spans["uniner"], on_doc.spans["uniner"].attrs["scores"])}
    off = {(s.text, s.label_): score
           for s, score in zip(off_doc.spans["uniner"], off_doc.spans["uniner"].attrs["scores"])}
    assert on.keys() == off.keys()
    assert on[("Paris Hilton", "person")] != on[("Paris Hilton", "location")]
    assert on != off


def test_entity_scores_are_their_own_labels():
    """Two labels of one span share spaCy's span extensions; the entity must show its own score."""
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "location"], "backend": {
        "@misc": "uniner.Canned.v1", "answers": {"person": ["Paris Hilton"], "location": ["Paris Hilton"]}}})
    doc = nlp(TEXT)
    group = doc.spans["uniner"]
    scores = {(s.text, s.label_): x for s, x in zip(group, group.attrs["scores"])}
    (ent,) = [e for e in doc.ents if e.text == "Paris Hilton"]
    assert ent._.uniner_score == scores[("Paris Hilton", ent.label_)]
    assert ent._.uniner_score == max(scores[("Paris Hilton", "person")], scores[("Paris Hilton", "location")])


def test_every_candidate_reads_its_own_values():
    """A losing claim used to read the winner's `_.uniner_score` and `_.uniner_source` (spaCy keys span
    extensions by offsets); each (start, end, label) now reads its own, also after a DocBin round trip."""
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "location"], "stages": {}, "backend": {
        "@misc": "uniner.Canned.v1", "answers": {"person": ["Paris Hilton"], "location": ["Paris Hilton", "Paris"]}}})
    doc = nlp(TEXT)
    bin_ = DocBin(store_user_data=True)
    bin_.add(doc)
    (loaded,) = bin_.from_bytes(bin_.to_bytes()).get_docs(nlp.vocab)
    for d in (doc, loaded):
        group = d.spans["uniner"]
        by_label = {(s.text, s.label_): s for s in group}
        scores = {(s.text, s.label_): x for s, x in zip(group, group.attrs["scores"])}
        assert len(by_label) == 3
        for key, span in by_label.items():
            assert span._.uniner_score == scores[key]
            assert span._.uniner_source == key[1]
        # the canned backend scores a later mention in its answer lower: the two claims differ
        person, location = by_label[("Paris Hilton", "person")], by_label[("Paris Hilton", "location")]
        assert person._.uniner_score != location._.uniner_score
        (ent,) = [e for e in d.ents if e.text == "Paris Hilton"]
        assert ent._.uniner_source == ent.label_
