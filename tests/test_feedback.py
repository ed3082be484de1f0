"""Feedback: corrections → Examples for the conversation builder, and block-list proposals."""
import json

import pytest
import spacy
from spacy.tokens import DocBin

from uniner_spacy.distill.feedback import (
    FeedbackError,
    parse_row,
    propose_block_list,
    read_corrections,
    snippet_yaml,
    to_examples,
)
from uniner_spacy.stages.rules import Rules
from uniner_spacy.types import Entity

ROWS = [
    {"text": "He met Acme Corp in Paris.", "spans": [
        {"start": 0, "end": 2, "label": "person", "verdict": "rejected"},
        {"start": 7, "end": 16, "label": "organization", "verdict": "accepted"},
        {"start": 20, "end": 25, "label": "location", "verdict": "added"}]},
    {"text": "He said it was fine.", "spans": [
        {"start": 0, "end": 2, "label": "person", "verdict": "rejected"},
        {"start": 8, "end": 10, "label": "organization", "verdict": "rejected"}]},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_corrections_become_examples(tmp_path):
    corrections = read_corrections(write_jsonl(tmp_path / "fb.jsonl", ROWS))
    examples = to_examples(corrections)
    assert examples[0].entities == [Entity(7, 16, "organization"), Entity(20, 25, "location")]
    assert examples[1].entities == []  # all rejected: the labels are negatives, answer []
    assert examples[0].labels == ["person", "organization", "location"]
    assert to_examples(corrections, labels=["person"])[1].labels == ["person"]


def test_examples_feed_the_conversation_builder(tmp_path):
    from training.conversations import BuildOptions, build_conversations

    examples = to_examples(read_corrections(write_jsonl(tmp_path / "fb.jsonl", ROWS)))
    convs = build_conversations(examples, BuildOptions(negative_share=0.5, seed=0))
    first = dict(zip(convs[0].types, (a for _, a in convs[0].turns)))
    assert first["organization"] == '["Acme Corp"]' and first["location"] == '["Paris"]'
    assert all(answer == "[]" for c in convs[1:] for _, answer in c.turns)


def test_docbin_corrections(tmp_path):
    nlp = spacy.blank("en")
    doc = nlp("He met Acme Corp in Paris.")
    doc.ents = [doc.char_span(7, 16, label="organization")]
    doc.spans["rejected"] = [doc.char_span(0, 2, label="person")]
    doc.spans["added"] = [doc.char_span(20, 25, label="location")]
    DocBin(docs=[doc], store_user_data=True).to_disk(tmp_path / "fb.spacy")
    [c] = read_corrections(tmp_path / "fb.spacy")
    assert sorted((s.start, s.verdict) for s in c.spans) == [(0, "rejected"), (7, "accepted"), (20, "added")]


@pytest.mark.parametrize("row, message", [
    ({"spans": []}, "row.text: expected a string"),
    ({"text": "abc", "spans": [{"start": 0, "end": 9, "label": "x", "verdict": "accepted"}]},
     "row.spans[0]: start/end 0/9 must be integers with 0 ≤ start < end ≤ 3"),
    ({"text": "abc", "spans": [{"start": 0, "end": 1, "label": "x", "verdict": "maybe"}]},
     "row.spans[0].verdict: expected one of accepted, rejected, added, got 'maybe'"),
    ({"text": "abc", "spans": [{"start": 0, "end": 1}]}, "row.spans[0]: missing label, verdict"),
])
def test_bad_rows_name_the_field(row, message):
    with pytest.raises(FeedbackError) as err:
        parse_row(row)
    assert message in str(err.value)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "fb.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{oops\n")
    with pytest.raises(FeedbackError, match="fb.jsonl:2: not JSON"):
        read_corrections(path)


def test_repeated_rejections_become_a_valid_rules_snippet(tmp_path):
    corrections = read_corrections(write_jsonl(tmp_path / "fb.jsonl", ROWS))
    snippet = propose_block_list(corrections, min_count=2)
    assert snippet["filters"]["labels"] == {"person": {"block": ["he"]}}
    rules = Rules(snippet)  # validates
    doc = spacy.blank("en")("He left.")
    from uniner_spacy.types import Candidate

    assert rules(doc, [Candidate(0, 2, "person")]) == []
    assert "block:\n      - he" in snippet_yaml(snippet)
    # once accepted somewhere, the text is no longer proposed
    accepted = parse_row({"text": "He", "spans": [{"start": 0, "end": 2, "label": "person", "verdict": "accepted"}]})
    assert propose_block_list(corrections + [accepted], min_count=2)["filters"]["labels"] == {}


def test_convert_turns_feedback_into_conversations_and_rules(tmp_path):
    from pathlib import Path

    import yaml

    from training.convert import main

    sample = Path(__file__).resolve().parent.parent / "training" / "sample_feedback.jsonl"
    out, rules = tmp_path / "conv.jsonl", tmp_path / "rules.yaml"
    stats = main(["--feedback", str(sample), "--out", str(out), "--propose-rules", str(rules)])
    assert stats["conversations"] == 4
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    first = dict(map(tuple, rows[0]["turns"]))
    assert first["location"] == '["Berlin"]'  # `last week` was rejected: not an answer
    assert yaml.safe_load(rules.read_text())["filters"]["labels"] == {
        "location": {"block": ["last week"]}, "person": {"block": ["reporters"]}}
