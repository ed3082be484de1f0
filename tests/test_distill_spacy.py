"""Distillation into a spaCy `ner`: the silver filters on fixed inputs, and `uniner-spacy distill` end to end
(a canned teacher: these tests are about the steps; the project's smoke workflow runs the real one)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from conftest import canned
from typer.testing import CliRunner

from uniner_spacy.cli.app import app, parse_thresholds
from uniner_spacy.distill.silver import SilverFilters, calibrated_thresholds, majority_labels, silver_docs
from uniner_spacy.distill.spacy_student import counts_to_scores, student_config
from uniner_spacy.errors import ConfigError

TEXT = "Ada Lovelace met Charles Babbage in London."


def row(ents, status="ok", truncated=0, spans=None, text=TEXT):
    def ent(start, end, label, score=0.9):
        return {"start": start, "end": end, "text": text[start:end], "label": label, "score": score}

    ents = [ent(*e) for e in ents]
    return {"text": text, "ents": ents, "spans": [ent(*s) for s in spans] if spans else ents,
            "stats": {"truncated": truncated, "backend_errors": 0, "errors": []}, "_index": 0, "_status": status}


def iob(doc):
    return [(t.text, t.ent_iob_, t.ent_type_) for t in doc]


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def test_incomplete_and_truncated_documents_are_left_out(nlp):
    rows = [row([(0, 12, "person")]), row([], status="failed"), row([(0, 12, "person")], truncated=1)]
    docs, report = silver_docs(nlp, rows, SilverFilters())
    assert len(docs) == 1 and report.not_complete == 1 and report.truncated == 1
    docs, report = silver_docs(nlp, rows, SilverFilters(drop_truncated=False))
    assert len(docs) == 2 and report.truncated == 0


def test_a_low_score_entity_is_missing_not_outside(nlp):
    rows = [row([(0, 12, "person", 0.95), (17, 32, "person", 0.3)])]
    [doc], report = silver_docs(nlp, rows, SilverFilters(min_score={"person": 0.5}))
    assert [e.text for e in doc.ents] == ["Ada Lovelace"] and report.low_score == 1
    assert iob(doc)[3:5] == [("Charles", "", ""), ("Babbage", "", "")]  # unknown: no loss either way
    assert iob(doc)[2] == ("met", "O", "")
    assert SilverFilters(min_score={"Person": 0.5}).threshold("person") == 0.5  # names match by label_key


def test_a_name_takes_its_majority_label_or_is_missing(nlp):
    london = (36, 42, "location")
    rows = [row([london]), row([london]), row([(36, 42, "organization")])]
    assert majority_labels(rows, 0.6) == {"london": "location"}
    docs, report = silver_docs(nlp, rows, SilverFilters(consistency=0.6))
    assert [e.label_ for d in docs for e in d.ents] == ["location"] * 3 and report.relabelled == 1
    docs, report = silver_docs(nlp, rows, SilverFilters(consistency=0.9))
    assert [list(d.ents) for d in docs] == [[], [], []] and report.inconsistent == 3
    assert iob(docs[0])[-2] == ("London", "", "")


def test_unsure_candidates_and_labels_kept(nlp):
    rows = [row([(0, 12, "person")], spans=[(0, 12, "person"), (36, 42, "location")])]
    [doc], report = silver_docs(nlp, rows, SilverFilters(unsure_candidates=True))
    assert report.unsure == 1 and iob(doc)[-2] == ("London", "", "")
    [doc], _ = silver_docs(nlp, [row([(0, 12, "person"), (36, 42, "location")])], SilverFilters(), ["Location"])
    assert [e.label_ for e in doc.ents] == ["location"]  # labels match by label_key


def test_thresholds_are_calibrated_per_label_on_gold():
    ada, babbage, london = (0, 12), (17, 32), (36, 42)
    rows = [row([(*ada, "person", 0.9), (*babbage, "person", 0.8), (*london, "location", 0.4)]),
            row([(*ada, "person", 0.5), (*london, "location", 0.7)])]
    gold = [[(*ada, "person"), (*london, "location")], [(*london, "location")]]
    # person: 0.5 and 0.8 are wrong, 0.9 right → keep only ≥ 0.9; location: both right → keep all (0)
    assert calibrated_thresholds(rows, gold, ["person", "location", "date"]) == {
        "person": 0.9, "location": 0.0, "date": 0.0}
    docs, report = silver_docs(spacy.blank("en"), rows, SilverFilters(min_score={"person": 0.9}))
    assert report.low_score == 2 and [e.text for e in docs[0].ents] == ["Ada Lovelace", "London"]


def test_min_score_from_the_command_line():
    assert parse_thresholds("0.4") == 0.4
    assert parse_thresholds("person=0.3, miscellaneous=0.6") == {"person": 0.3, "miscellaneous": 0.6}


def test_span_scores_per_label():
    scores = counts_to_scores([[(0, 3, "a"), (4, 6, "b")]], [[(0, 3, "a"), (7, 9, "b")]], {"a", "b"})
    assert scores["per_label"]["a"]["f1"] == 100.0 and scores["per_label"]["b"]["f1"] == 0.0
    assert scores["f1"] == 50.0


def test_student_configs_are_spacys_own():
    cnn = student_config("cnn", max_steps=10)
    assert list(cnn["components"]) == ["tok2vec", "ner"] and cnn["training"]["max_steps"] == 10
    pytest.importorskip("spacy_transformers")  # an extra: uniner-spacy[transformer]
    trf = student_config("transformer", max_steps=100)
    assert trf["components"]["transformer"]["model"]["name"].endswith("model")  # the packaged MiniLM folder
    assert trf["training"]["optimizer"]["learn_rate"]["total_steps"] == 100



def test_a_transformer_student_without_spacy_transformers_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy_transformers", None)  # not installed
    with pytest.raises(ConfigError, match=r"pip install 'uniner-spacy\[transformer\]'"):
        student_config("transformer")

def load_without_uniner(path: Path, text: str) -> dict:
    """Load a pipeline in a clean process that cannot see uniner-spacy: its entry points (which spaCy
    imports for any installed plugin) hidden, and importing it an error. The pipeline needs nothing of ours."""
    code = f"""
import importlib.metadata as md, json, sys
installed = md.entry_points()
others = md.EntryPoints(ep for group in installed.groups for ep in installed.select(group=group)
                        if not ep.value.startswith("uniner_spacy"))
md.entry_points = lambda **select: others.select(**select) if select else others  # what torch's triton calls too
sys.modules["uniner_spacy"] = None  # any import of it raises ImportError
import spacy
nlp = spacy.load({str(path)!r})
doc = nlp({text!r})
print(json.dumps({{"pipes": nlp.pipe_names, "ents": [(e.text, e.label_) for e in doc.ents]}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_distill_runs_every_step_and_prints_a_pipeline_that_loads_without_us(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "organization", "location"], "backend": canned()})
    nlp.config.to_disk(tmp_path / "teacher.cfg")
    lines = [f"{p} works for Acme Corp in {c}." for p in ("Alice Smith", "Bob Jones") for c in ("Berlin", "Paris")]
    (tmp_path / "corpus.txt").write_text("\n".join(lines * 10) + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["distill", str(tmp_path / "corpus.txt"), str(out), "--config",
                                      str(tmp_path / "teacher.cfg"), "--max-steps", "100"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out / "pipeline")
    silver = json.loads((out / "silver.json").read_text())
    assert silver["documents"] == 40 and silver["entities"] == 120 and silver["train"] + silver["dev"] == 40
    meta = json.loads((out / "pipeline" / "meta.json").read_text())
    assert meta["name"] == "uniner_distilled_person_organization_location"
    assert meta["sources"][0]["model"].startswith("canned:")
    assert "uniner" not in (out / "pipeline" / "config.cfg").read_text()
    loaded = load_without_uniner(out / "pipeline", "Alice Smith works for Acme Corp in Paris.")
    assert loaded["pipes"] == ["tok2vec", "ner"]
    assert ("Alice Smith", "person") in [tuple(e) for e in loaded["ents"]]
    # a rerun resumes the silver (nothing asked again) and trains again
    again = CliRunner().invoke(app, ["distill", str(tmp_path / "corpus.txt"), str(out), "--config",
                                     str(tmp_path / "teacher.cfg"), "--max-steps", "20"])
    assert again.exit_code == 0 and "40 of 40 documents are complete" in again.output, again.output


@pytest.mark.slow
def test_distill_calibrates_each_labels_threshold_on_a_few_gold_documents(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "location"], "backend": canned(score=0.6)})
    nlp.config.to_disk(tmp_path / "teacher.cfg")
    (tmp_path / "corpus.txt").write_text("Alice Smith works for Acme Corp in Berlin.\n" * 12)
    # one score for every answer, so each label's best threshold is the lowest (the math is tested above)
    text = "Bob Jones works for Acme Corp in Paris."
    (tmp_path / "gold.json").write_text(json.dumps([{"sentence": text, "entities": [
        {"name": "Bob Jones", "type": "person", "pos": [0, 9]},
        {"name": "Acme", "type": "location", "pos": [20, 24]}]}]))
    out = tmp_path / "out"
    args = ["distill", str(tmp_path / "corpus.txt"), str(out), "--config", str(tmp_path / "teacher.cfg"),
            "--max-steps", "20", "--calibrate", str(tmp_path / "gold.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    filters = json.loads((out / "silver.json").read_text())["filters"]
    assert filters["min_score"] == {"person": 0.0, "location": 0.0}, result.output
    assert (out / "calibration.jsonl").exists() and "thresholds: person 0.000, location 0.000" in result.output
    # a label the gold never names cannot be calibrated: said, and left at 0
    (tmp_path / "gold.json").write_text(json.dumps([{"sentence": text, "entities": [
        {"name": "Bob Jones", "type": "person", "pos": [0, 9]}]}]))
    result = CliRunner().invoke(app, args)  # the teacher's calibration answers are resumed, not asked again
    assert result.exit_code == 0 and "1 of 1 documents are complete" in result.output, result.output
    assert "no location in the calibration gold: its threshold stays 0" in result.output


def test_gold_spans_keep_or_rename_the_labels_asked():
    from uniner_spacy.distill.spacy_student import gold_spans
    from uniner_spacy.types import AnnotatedText, Entity

    ents = [Entity(0, 3, "person"), Entity(8, 12, "else"), Entity(16, 21, "location")]
    eg = AnnotatedText("Bob met Acme in Paris.", ents, ["person", "else", "location"], "x")
    assert gold_spans([eg], {"person": "person", "else": "else"}) == [[(0, 3, "person"), (8, 12, "else")]]
    assert gold_spans([eg], {"else": "miscellaneous"}) == [[(8, 12, "miscellaneous")]]
