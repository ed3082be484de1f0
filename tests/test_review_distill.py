"""A corrected review export in `uniner-spacy distill`: trained on beside the silver (in place of the
silver of its texts), and as the gold that calibrates each label's threshold."""
from __future__ import annotations

import json

import pytest
import spacy
from conftest import canned
from spacy.tokens import DocBin
from typer.testing import CliRunner

from uniner_spacy.cli.app import app

LABELS = ["person", "organization", "location"]
CORRECTED = "Alice Smith works for Acme Corp in Berlin."


def _reviewed_export(tmp_path):
    """A Label Studio export in which a person relabelled Berlin organization (as `import` reads it)."""
    task = {"data": {"text": CORRECTED, "uniner": {"id": "r1", "labels": LABELS}}, "annotations": [{
        "was_cancelled": False, "result": [
            {"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": s, "end": e, "text": CORRECTED[s:e], "labels": [label]}}
            for s, e, label in [(0, 11, "person"), (22, 31, "organization"), (35, 41, "organization")]]}]}
    path = tmp_path / "reviewed.json"
    path.write_text(json.dumps([task]))
    return path


@pytest.mark.slow
def test_distill_trains_on_reviewed_documents_beside_the_silver(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": LABELS, "backend": canned()})
    nlp.config.to_disk(tmp_path / "teacher.cfg")
    lines = [f"{p} works for Acme Corp in {c}." for p in ("Alice Smith", "Bob Jones") for c in ("Berlin", "Paris")]
    (tmp_path / "corpus.txt").write_text("\n".join(lines * 3) + "\n")
    out = tmp_path / "out"
    reviewed = _reviewed_export(tmp_path)
    result = CliRunner().invoke(app, ["distill", str(tmp_path / "corpus.txt"), str(out), "--config",
                                      str(tmp_path / "teacher.cfg"), "--max-steps", "10", "--reviewed", str(reviewed),
                                      "--calibrate", str(reviewed)])
    assert result.exit_code == 0, result.output
    assert "reviewed: 1 documents: 1 reviewed and accepted" in result.output
    assert "thresholds:" in result.output  # the export was the calibration gold too
    assert json.loads((out / "silver.json").read_text())["reviewed"] == 1
    vocab = spacy.blank("en").vocab
    train = list(DocBin().from_disk(out / "corpus" / "train.spacy").get_docs(vocab))
    dev = list(DocBin().from_disk(out / "corpus" / "dev.spacy").get_docs(vocab))
    same = [d for d in train + dev if d.text == CORRECTED]
    assert len(same) == 1  # the three silver copies of the corrected text gave way to the reviewed one
    assert [(e.text, e.label_) for e in same[0].ents][-1] == ("Berlin", "organization")
    assert all(t.ent_iob_ in ("B", "I", "O") for t in same[0])  # reviewed: no token left missing


def test_distill_refuses_reviewed_labels_it_was_not_taught(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person"], "backend": canned()})
    nlp.config.to_disk(tmp_path / "teacher.cfg")
    (tmp_path / "corpus.txt").write_text("Alice Smith works for Acme Corp in Berlin.\n" * 4)
    result = CliRunner().invoke(app, ["distill", str(tmp_path / "corpus.txt"), str(tmp_path / "out"), "--config",
                                      str(tmp_path / "teacher.cfg"), "--reviewed", str(_reviewed_export(tmp_path))])
    assert result.exit_code == 2 and "unknown label 'organization'" in result.output, result.output


def test_reviewed_gold_docbin_is_checked_too(tmp_path):
    from uniner_spacy.errors import ReviewError
    from uniner_spacy.review import import_review, training_docs

    import_review(_reviewed_export(tmp_path), gold=tmp_path / "gold.spacy")
    docs, report = training_docs(tmp_path / "gold.spacy", LABELS)
    assert report is None and [(e.text, e.label_) for e in docs[0].ents][-1] == ("Berlin", "organization")
    with pytest.raises(ReviewError, match="labels that were not asked for: \\['organization'\\]"):
        training_docs(tmp_path / "gold.spacy", ["person", "location"])
