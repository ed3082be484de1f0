"""Rules stage: real spaCy tokenizer and Matcher, shipped rule files, validation messages."""
import json
import re

import pytest
import spacy
from conftest import canned
from spacy.tokens import Doc

from uniner_spacy.stages.rules import Rules, RulesError, load_rules, resolve_rules_path, shipped_rule_sets
from uniner_spacy.types import Candidate


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def cand(doc: Doc, text: str, label: str, score: float = 0.9, nth: int = 0) -> Candidate:
    start = -1
    for _ in range(nth + 1):
        start = doc.text.index(text, start + 1)
    return Candidate(start, start + len(text), label, score, source=label)


def texts(doc, candidates):
    return [(doc.text[c.start : c.end], c.label) for c in candidates]


def test_shipped_sets_load_and_names_resolve():
    assert {"default", "biomedical", "social_media"} <= set(shipped_rule_sets())
    for name in shipped_rule_sets():
        load_rules(name)
    assert resolve_rules_path("default").name == "default.yaml"
    with pytest.raises(RulesError, match="shipped set: biomedical, default"):
        resolve_rules_path("no_such_set")


def test_default_filters_pronouns_determiners_punct_and_bad_dates(nlp):
    doc = nlp("He met the CEO of Acme Corp on Monday and they said it was 2023 . . .")
    rules = load_rules("default")
    cands = [cand(doc, "He", "person"), cand(doc, "they", "person"), cand(doc, "the", "organization"),
             cand(doc, "Acme Corp", "organization"), cand(doc, "Monday", "date"),
             cand(doc, "CEO", "date"), cand(doc, "2023", "date"), cand(doc, ". .", "organization")]
    assert texts(doc, rules(doc, cands)) == [
        ("Acme Corp", "organization"), ("Monday", "date"), ("2023", "date")]


def test_edits_strip_articles_and_trailing_punct_but_keep_brackets(nlp):
    doc = nlp("We saw the Eiffel Tower. IL-2 (human) rose.")
    rules = load_rules("default")
    out = rules(doc, [cand(doc, "the Eiffel Tower.", "location"), cand(doc, "IL-2 (human)", "protein")])
    assert texts(doc, out) == [("Eiffel Tower", "location"), ("IL-2 (human)", "protein")]


def test_merge_adjacent_fragments_with_joiners(nlp):
    doc = nlp("The Bank of England and Bank raised rates.")
    rules = Rules({"merges": {"joiners": ["of"]}})
    out = rules(doc, [cand(doc, "Bank", "organization"), cand(doc, "England", "organization"),
                      cand(doc, "Bank", "organization", nth=1)])
    assert texts(doc, out) == [("Bank of England", "organization"), ("Bank", "organization")]
    assert out[0].match == "merged"
    # `and` is no joiner: the second Bank stays apart
    assert Rules({"merges": {"enabled": False}})(doc, out) == out


def test_per_label_matcher_patterns_and_regex(nlp):
    doc = nlp("Call 555 1234 or visit acme corp at Main Street .")
    rules = Rules({"filters": {"labels": {
        "phone": {"patterns": [[{"IS_DIGIT": True, "OP": "+"}]]},
        "organization": {"exclude_patterns": [[{"IS_LOWER": True, "OP": "+"}]]},
        "address": {"regex": r"(?i)street|road", "max_tokens": 3},
    }}})
    cands = [cand(doc, "555 1234", "phone"), cand(doc, "visit", "phone"),
             cand(doc, "acme corp", "organization"), cand(doc, "Main Street", "address"),
             cand(doc, "Main", "address")]
    assert texts(doc, rules(doc, cands)) == [("555 1234", "phone"), ("Main Street", "address")]


def test_block_lists_are_case_insensitive(nlp):
    doc = nlp("The Entity and Acme met.")
    rules = Rules({"filters": {"block": ["the entity"], "labels": {"organization": {"block": ["acme"]}}}})
    out = rules(doc, [cand(doc, "The Entity", "person"), cand(doc, "Acme", "organization"),
                      cand(doc, "Acme", "person")])
    assert texts(doc, out) == [("Acme", "person")]


def test_gazetteer_adds_fuzzy_and_normalises(nlp, tmp_path):
    (tmp_path / "orgs.txt").write_text("# orgs\nAcme Corporation\n")
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"gazetteers": [
        {"label": "organization", "file": "orgs.txt", "fuzzy": 85, "mode": "both", "score": 0.8}]}))
    rules = load_rules(str(path))
    doc = nlp("Acme Corporaton hired Globex staff.")
    out = rules(doc, [cand(doc, "Acme Corporaton", "person")])
    # normalised: the student's label becomes the gazetteer's; added: nothing new, same span
    assert texts(doc, out) == [("Acme Corporaton", "organization")]
    assert "gazetteer:Acme Corporation" in out[0].source
    doc2 = nlp("Staff of Acme Corporation left.")
    added = rules(doc2, [])
    assert texts(doc2, added) == [("Acme Corporation", "organization")]
    assert added[0].score == 0.8 and added[0].match == "exact"


@pytest.mark.parametrize("data, message", [
    ({"filtres": {}}, "rules: unknown key 'filtres'; allowed keys: description, edits, filters"),
    ({"filters": {"pronoun": True}}, "rules.filters: unknown key 'pronoun'"),
    ({"filters": {"pronouns": "yes"}}, "rules.filters.pronouns: expected true or false, got 'yes'"),
    ({"filters": {"min_tokens": 3, "max_tokens": 2}}, "min_tokens (3) is larger than max_tokens (2)"),
    ({"filters": {"labels": {"date": {"regex": "[0-9"}}}},
     "rules.filters.labels.date.regex: invalid regular expression '[0-9'"),
    ({"filters": {"labels": {"date": {"patterns": [[{"IS_DIGITT": True}]]}}}},
     "rules.filters.labels.date.patterns[0]: invalid Matcher pattern"),
    ({"filters": {"block": "it"}}, "rules.filters.block: expected a list of strings, got 'it'"),
    ({"gazetteers": [{"entries": ["x"]}]}, "rules.gazetteers[0].label: every gazetteer needs a label"),
    ({"gazetteers": [{"label": "org", "entries": ["x"], "mode": "replace"}]},
     "rules.gazetteers[0].mode: expected one of add, normalise, both, got 'replace'"),
    ({"gazetteers": [{"label": "org", "entries": ["x"], "fuzzy": 150}]}, "fuzzy: expected a rapidfuzz ratio"),
    ({"edits": {"strip_leading": "the"}}, "rules.edits.strip_leading: expected a list of words or 'articles'"),
    ({"version": 2}, "rules.version: only version 1 is known"),
    ({"edits": {"labels": ["date"]}}, "rules.edits.labels: expected a mapping of label → edits"),
    ({"edits": {"labels": {"date": {"strip_trailing": True}}}},
     "rules.edits.labels.date: unknown key 'strip_trailing'"),
])
def test_validation_names_the_bad_key_or_value(data, message):
    with pytest.raises(RulesError, match=re.escape(message)):
        Rules(data)


def test_bad_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("filters: [unclosed\n")
    with pytest.raises(RulesError, match="bad.yaml: not valid YAML"):
        load_rules(str(path))


def test_rules_stage_in_the_real_component(tmp_path):
    """The (canned) backend answers persons `["Bob Jones", "Alice Smith"]`; a block list removes one."""
    path = tmp_path / "mine.yaml"
    path.write_text("filters:\n  labels:\n    person:\n      block: [alice smith]\n")
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={
        "labels": ["person", "location"],
        "backend": canned(),
        "stages": {
            "default": {"@misc": "uniner.Rules.v1", "path": "default"},
            "mine": {"@misc": "uniner.Rules.v1", "path": str(path)}},
    })
    doc = nlp("Bob Jones flew to Paris with Alice Smith.")
    assert [(e.text, e.label_) for e in doc.ents] == [("Bob Jones", "person"), ("Paris", "location")]
    assert [s.text for s in doc.spans["uniner"]] == ["Bob Jones", "Paris"]
