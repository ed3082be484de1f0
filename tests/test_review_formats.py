"""Export and import for Prodigy and doccano, checked against their documented task formats (Prodigy is
not installable here: its files are written by hand from the examples in Prodigy's documentation of
the `ner_manual` and `ner` interfaces and of `db-out`); the errors a person's corrections can cause;
the CLI's `export` / `import`, `score` on reviewed gold, and per-label colours in annotate's .html."""
from __future__ import annotations

import json
import re

import pytest
import spacy
from conftest import canned
from spacy.tokens import DocBin
from typer.testing import CliRunner

from uniner_spacy.cli.app import app
from uniner_spacy.distill.feedback import propose_block_list, read_corrections, to_examples
from uniner_spacy.errors import ReviewError, UninerError
from uniner_spacy.evaluation.loaders import load_report
from uniner_spacy.io import doc_to_json
from uniner_spacy.palette import label_colors
from uniner_spacy.pipeline.build import build_nlp
from uniner_spacy.review import (
    Predicted,
    ReviewDoc,
    export_tasks,
    read_predictions,
    read_reviewed,
    to_corrections,
    write_export,
)

runner = CliRunner()
LABELS = ["person", "organization", "location"]
TEXTS = ["Alice Smith works for Acme Corp in Berlin.", "Bob Jones flew to Paris with Alice Smith."]

# Prodigy's documentation, ner_manual interface: the task with its tokens and a span over two of them
# (token_end is the last token's index, inclusive)
PRODIGY_NER_MANUAL = {
    "text": "First look at the new MacBook Pro",
    "spans": [{"start": 22, "end": 33, "label": "PRODUCT", "token_start": 5, "token_end": 6}],
    "tokens": [
        {"text": "First", "start": 0, "end": 5, "id": 0},
        {"text": "look", "start": 6, "end": 10, "id": 1},
        {"text": "at", "start": 11, "end": 13, "id": 2},
        {"text": "the", "start": 14, "end": 17, "id": 3},
        {"text": "new", "start": 18, "end": 21, "id": 4},
        {"text": "MacBook", "start": 22, "end": 29, "id": 5},
        {"text": "Pro", "start": 30, "end": 33, "id": 6},
    ],
}
# ... and the ner interface's binary task, as db-out writes it back with the answer and hashes
PRODIGY_NER = {"text": "Apple updates its analytics service with new metrics",
               "spans": [{"start": 0, "end": 5, "label": "ORG"}]}
DB_OUT = {"_input_hash": 1923837395, "_task_hash": -1234567, "_view_id": "ner_manual", "_timestamp": 1700000000}


def _annotate(tmp_path, texts=TEXTS, name="out.jsonl"):
    nlp = build_nlp(LABELS, backend=canned())
    out = tmp_path / name
    with out.open("w") as fh:
        for i, doc in enumerate(nlp.pipe(texts)):
            fh.write(json.dumps(doc_to_json(doc, {"id": f"doc-{i}", "source": "wire", "_index": i})) + "\n")
    return out


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- Prodigy


def test_prodigy_export_is_the_documented_ner_manual_task():
    doc = ReviewDoc("d1", PRODIGY_NER_MANUAL["text"], [Predicted(22, 33, "PRODUCT", 0.8)], ["PRODUCT"], {"src": "x"})
    task = export_tasks([doc], "prodigy")[0]
    assert task["text"] == PRODIGY_NER_MANUAL["text"]
    assert [{k: t[k] for k in ("text", "start", "end", "id")} for t in task["tokens"]] == PRODIGY_NER_MANUAL["tokens"]
    span = task["spans"][0]
    assert {k: span[k] for k in PRODIGY_NER_MANUAL["spans"][0]} == PRODIGY_NER_MANUAL["spans"][0]
    assert span["score"] == 0.8 and task["meta"] == {"id": "d1", "src": "x"}


def test_prodigy_db_out_reads_back(tmp_path):
    path = _jsonl(tmp_path / "db-out.jsonl", [
        {**PRODIGY_NER_MANUAL, **DB_OUT, "answer": "accept"},
        {**PRODIGY_NER, **DB_OUT, "_view_id": "ner", "answer": "reject"},
        {**PRODIGY_NER, **DB_OUT, "text": "Ignored text.", "spans": [], "answer": "ignore"},
    ])
    docs, report = read_reviewed(path)
    assert [d.status for d in docs] == ["accept", "reject", "ignore"]
    assert docs[0].spans == [(22, 33, "PRODUCT")]
    assert report.counts == {"accept": 1, "reject": 1, "ignore": 1, "unreviewed": 0}
    # gold for score / distill: only the accepted task; the rejected binary suggestion is a rejection
    loaded = load_report(path)
    assert loaded.format == "prodigy" and [eg.text for eg in loaded.examples] == [PRODIGY_NER_MANUAL["text"]]
    corrections = read_corrections(path)
    assert [(c.text[s.start:s.end], s.label, s.verdict) for c in corrections for s in c.spans] == [
        ("MacBook Pro", "PRODUCT", "added"), ("Apple", "ORG", "rejected")]


def test_prodigy_round_trip_keeps_scores_ids_and_corrections(tmp_path):
    docs = read_predictions(_annotate(tmp_path), LABELS)
    out = write_export(docs, tmp_path / "prodigy.jsonl", "prodigy")[0]
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["meta"]["id"] for r in rows] == ["doc-0", "doc-1"] and rows[0]["meta"]["source"] == "wire"
    assert all("score" in s for r in rows for s in r["spans"])
    # the reviewer removes Paris and accepts the rest, as db-out writes it
    rows[1]["spans"] = [s for s in rows[1]["spans"] if s["label"] != "location"]
    _jsonl(out, [{**r, **DB_OUT, "answer": "accept"} for r in rows])
    reviewed, _ = read_reviewed(out)
    assert [d.id for d in reviewed] == ["doc-0", "doc-1"] and reviewed[1].fields["source"] == "wire"
    verdicts = {(c.text[s.start:s.end], s.verdict) for c in to_corrections(reviewed) for s in c.spans}
    assert ("Paris", "rejected") in verdicts and ("Bob Jones", "accepted") in verdicts
    examples = to_examples(read_corrections(out))
    assert [e.label for e in examples[1].entities] == ["person", "person"]


def test_prodigy_tokens_must_match_the_span(tmp_path):
    bad = {**PRODIGY_NER_MANUAL, "answer": "accept",
           "spans": [{"start": 22, "end": 33, "label": "PRODUCT", "token_start": 5, "token_end": 5}]}
    with pytest.raises(ReviewError, match="characters 22-33 but tokens 5-5 cover 22-29"):
        read_reviewed(_jsonl(tmp_path / "bad.jsonl", [bad]))


# ---------------------------------------------------------------- doccano


def test_doccano_round_trip_both_export_shapes(tmp_path):
    docs = read_predictions(_annotate(tmp_path), LABELS)
    out = write_export(docs, tmp_path / "doccano.jsonl", "doccano")[0]
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert rows[0]["label"] == [[0, 11, "person"], [22, 31, "organization"], [35, 41, "location"]]
    assert rows[0]["source"] == "wire" and rows[0]["uniner"]["id"] == "doc-0"
    assert [p[3] for p in rows[0]["uniner"]["predicted"]] == [e.score for e in docs[0].ents]  # scores kept
    # doccano's export: its own id, the labels as edited (Berlin → organization); a relation project's
    # export lists `entities` instead
    rows[0] = {**rows[0], "id": 17, "Comments": [], "label": [[0, 11, "person"], [35, 41, "organization"]]}
    rows[1] = {**{k: v for k, v in rows[1].items() if k != "label"}, "id": 18, "relations": [], "entities": [
        {"id": 1, "label": "person", "start_offset": 0, "end_offset": 9}]}
    _jsonl(out, rows)
    reviewed, report = read_reviewed(out)
    assert [d.id for d in reviewed] == ["doc-0", "doc-1"] and report.counts["accept"] == 2
    assert reviewed[0].spans == [(0, 11, "person"), (35, 41, "organization")]
    assert reviewed[1].spans == [(0, 9, "person")] and reviewed[1].fields == {"source": "wire", "_index": 1}
    block = propose_block_list(to_corrections(reviewed), min_count=1)["filters"]["labels"]
    # Alice Smith, removed from doc-1 but kept in doc-0, is no block-list text
    assert block == {"location": {"block": ["berlin", "paris"]}, "organization": {"block": ["acme corp"]}}


def test_doccano_classification_labels_are_refused(tmp_path):
    with pytest.raises(ReviewError, match="expected \\[start, end, label\\]"):
        read_reviewed(_jsonl(tmp_path / "d.jsonl", [{"text": "Great film.", "label": ["positive"]}]), "doccano")


# ---------------------------------------------------------------- what the export keeps


def test_uncertain_first_and_long_documents(tmp_path):
    long_text = "Alice Smith works for Acme Corp in Berlin. " * 500  # 21,500 characters: one task
    docs = read_predictions(_annotate(tmp_path, [TEXTS[0], long_text.strip(), "Nothing here."]), LABELS)
    docs[1].ents = [Predicted(e.start, e.end, e.label, 0.1 if e.start == 0 else 0.9) for e in docs[1].ents]
    tasks = export_tasks(docs, "label-studio", uncertain_first=True)
    assert [t["data"]["id"] for t in tasks] == ["doc-1", "doc-0", "doc-2"]  # no entities: last
    assert tasks[0]["data"]["text"] == long_text.strip() and len(tasks[0]["predictions"][0]["result"]) == 1500
    scores = [r["score"] for r in tasks[1]["predictions"][0]["result"]]
    assert scores == sorted(scores)  # least certain region first
    doccano = export_tasks(docs, "doccano")  # doccano numbers rows itself: the id rides in `uniner`
    assert ["id" in t for t in doccano] == [False] * 3
    assert [t["uniner"]["id"] for t in doccano] == ["doc-0", "doc-1", "doc-2"]


def test_export_refuses_incomplete_rows_and_reads_docbin_scores(tmp_path):
    out = _annotate(tmp_path)
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    rows[1]["_status"] = "failed"
    with pytest.raises(ReviewError, match="1 rows are not complete"):
        read_predictions(_jsonl(tmp_path / "partial.jsonl", rows))
    nlp = build_nlp(LABELS, backend=canned())
    DocBin(docs=list(nlp.pipe(TEXTS)), store_user_data=True).to_disk(tmp_path / "out.spacy")
    docs = read_predictions(tmp_path / "out.spacy", LABELS)
    assert [(e.label, round(e.score, 3)) for e in docs[0].ents] == [
        (e.label, round(e.score, 3)) for e in read_predictions(out, LABELS)[0].ents]


# ---------------------------------------------------------------- errors on the way back


def _ls_export(tmp_path, results, text_edit=None):
    docs = read_predictions(_annotate(tmp_path), LABELS)
    tasks = export_tasks(docs[:1], "label-studio")
    tasks[0]["annotations"] = [{"result": [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": s, "end": e, "text": TEXTS[0][s:e], "labels": labels}} for s, e, labels in results],
        "was_cancelled": False}]
    if text_edit:
        tasks[0]["data"]["text"] = text_edit
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    return path


@pytest.mark.parametrize("results, edit, message", [
    ([(0, 11, ["celebrity"])], None, "unknown label 'celebrity' on 'Alice Smith'; the document was exported for"),
    ([(0, 11, ["person"]), (6, 17, ["person"])], None, "overlapping spans 'Alice Smith' .* and 'Smith works'"),
    ([(0, 11, ["person", "location"])], None, "has 2 labels"),
    ([(0, 11, ["person"])], "Alice Smith works for Acme Corp in Munich.", "the text was edited in the tool"),
])
def test_review_errors_name_the_document(tmp_path, results, edit, message):
    with pytest.raises(ReviewError, match=message) as err:
        read_reviewed(_ls_export(tmp_path, results, edit))
    assert "document 'doc-0'" in str(err.value) or "result[" in str(err.value)
    assert isinstance(err.value, UninerError)


def test_offsets_that_do_not_hold_their_text(tmp_path):
    path = _ls_export(tmp_path, [(0, 11, ["person"])])
    tasks = json.loads(path.read_text())
    tasks[0]["annotations"][0]["result"][0]["value"]["text"] = "Alice"
    path.write_text(json.dumps(tasks))
    with pytest.raises(ReviewError, match="says 'Alice' but the text at 0-11 is 'Alice Smith'"):
        read_reviewed(path)


def test_utf16_offsets_of_a_browser_are_read_as_characters(tmp_path):
    text = "Launch 🚀 by Alice Smith."  # the rocket is one character, two UTF-16 units
    task = {"data": {"text": text}, "annotations": [{"result": [
        {"type": "labels", "from_name": "label", "to_name": "text",
         "value": {"start": 13, "end": 24, "text": "Alice Smith", "labels": ["person"]}}]}]}
    (tmp_path / "ls.json").write_text(json.dumps([task]))
    docs, _ = read_reviewed(tmp_path / "ls.json")
    assert docs[0].spans == [(12, 23, "person")] and text[12:23] == "Alice Smith"


# ---------------------------------------------------------------- CLI


def test_cli_export_import_and_score(tmp_path):
    out = _annotate(tmp_path)
    result = runner.invoke(app, ["export", str(out), str(tmp_path / "tasks.json"), "--format", "label-studio",
                                 "--uncertain-first", "--labels", ",".join(LABELS)])
    assert result.exit_code == 0, result.output
    config = (tmp_path / "tasks.label_config.xml").read_text()
    for label, colour in label_colors(LABELS).items():
        assert f'<Label value="{label}" background="{colour}"/>' in config
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    for task in tasks:  # the reviewer accepts every prediction
        task["annotations"] = [{"result": task["predictions"][0]["result"], "was_cancelled": False}]
    (tmp_path / "reviewed.json").write_text(json.dumps(tasks))
    result = runner.invoke(app, ["import", str(tmp_path / "reviewed.json"), "--gold", str(tmp_path / "gold.spacy"),
                                 "--corrections", str(tmp_path / "fb.jsonl"), "--block-list", str(tmp_path / "b.yml")])
    assert result.exit_code == 0, result.output
    assert "2 reviewed and accepted" in result.output
    gold = list(DocBin().from_disk(tmp_path / "gold.spacy").get_docs(spacy.blank("en").vocab))
    assert {(e.text, e.label_) for e in gold[0].ents} == {
        ("Alice Smith", "person"), ("Acme Corp", "organization"), ("Berlin", "location")}
    assert all(s["verdict"] == "accepted" for l in (tmp_path / "fb.jsonl").read_text().splitlines()
               for s in json.loads(l)["spans"])
    # the reviewed export as gold for `score`: the predictions equal to the gold score 1.0
    from uniner_spacy.evaluation.protocols import examples_to_predictions, write_jsonl

    loaded = load_report(tmp_path / "reviewed.json")
    write_jsonl(examples_to_predictions(loaded.examples), tmp_path / "pred.jsonl")
    result = runner.invoke(app, ["score", "--gold", str(tmp_path / "reviewed.json"), "--pred",
                                 str(tmp_path / "pred.jsonl")])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output.strip().splitlines()[-1])
    assert scored["format"] == "label_studio" and scored["span"]["f1"] == 1.0 and scored["queries"] == 6


def test_cli_import_error_is_a_clear_message(tmp_path):
    path = _ls_export(tmp_path, [(0, 11, ["celebrity"])])
    result = runner.invoke(app, ["import", str(path), "--gold", str(tmp_path / "g.spacy")])
    assert result.exit_code == 2 and "unknown label 'celebrity'" in result.output
    assert not (tmp_path / "g.spacy").exists()  # nothing half-written
    result = runner.invoke(app, ["export", str(tmp_path / "missing.jsonl"), str(tmp_path / "t.json"),
                                 "--format", "prodigy"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_annotate_html_colours_each_label(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": LABELS, "backend": canned()})
    nlp.config.to_disk(tmp_path / "config.cfg")
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    result = runner.invoke(app, ["annotate", str(tmp_path / "in.txt"), str(tmp_path / "out.html"),
                                 "--config", str(tmp_path / "config.cfg")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "out.html").read_text()
    colours = label_colors(LABELS)
    for label in LABELS:  # displaCy draws each entity's mark in its label's colour, not the default grey
        marks = re.findall(r'<mark class="entity" style="background: ([^;]+);[^>]*>\s*[^<]+\s*<span[^>]*>'
                           + label, html)
        assert marks and set(marks) == {colours[label]}, label
