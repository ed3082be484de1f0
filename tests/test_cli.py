import json

import spacy
from conftest import TINY_FACTS, canned, person_gold
from spacy.tokens import DocBin
from typer.testing import CliRunner

from uniner_spacy.cli.app import app

runner = CliRunner()
TEXTS = sorted({p for p, _ in TINY_FACTS})


def write_config(tmp_path, backend=None):
    """A config file of the pipe over `backend`; by default the canned one: these tests are about the CLI."""
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "organization", "location"], "backend": backend or canned()})
    path = tmp_path / "config.cfg"
    nlp.config.to_disk(path)
    return path


def test_annotate_jsonl_resumes(tmp_path):
    cfg = write_config(tmp_path)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(TEXTS * 2)))
    out = tmp_path / "out.jsonl"
    args = ["annotate", str(src), str(out), "--config", str(cfg)]
    assert runner.invoke(app, args).exit_code == 0
    first, second = out.read_text().splitlines(True)[:2]
    out.write_text(first + second[:20])  # a stopped run's output: one row and a torn one
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Resuming" in result.output and "Repaired" in result.output
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert [(r["_index"], r["_status"]) for r in rows] == [(i, "ok") for i in range(4)]
    assert {(e["text"], e["label"]) for e in rows[2]["ents"]} == {
        ("Alice Smith", "person"), ("Acme Corp", "organization"), ("Berlin", "location")}


def test_annotate_docbin_and_html(tmp_path):
    cfg = write_config(tmp_path)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    for name in ("out.spacy", "out.html"):
        result = runner.invoke(app, ["annotate", str(src), str(tmp_path / name), "--config", str(cfg)])
        assert result.exit_code == 0, result.output
    docs = list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(spacy.blank("en").vocab))
    assert [d.text for d in docs] == TEXTS and all(d.ents for d in docs)
    assert "Acme Corp" in (tmp_path / "out.html").read_text()


def test_evaluate_and_score(tmp_path):
    cfg = write_config(tmp_path)
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps([
        {"sentence": TEXTS[0], "entities": [{"name": "Alice Smith", "type": "person", "pos": [0, 11]},
                                             {"name": "Acme Corp", "type": "organization", "pos": [22, 31]},
                                             {"name": "Berlin", "type": "location", "pos": [35, 41]}]}]))
    (tmp_path / "labels.json").write_text(json.dumps(["person", "organization", "location"]))
    preds = tmp_path / "preds.jsonl"
    result = runner.invoke(app, ["evaluate", str(gold), "--config", str(cfg), "--predictions", str(preds)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["benchmark"]["string"] == 1.0 and summary["benchmark"]["span"] == 1.0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert all(row["candidates"] == row["spans"] for row in rows)  # no overlaps here: the same spans
    result = runner.invoke(app, ["score", "--gold", str(gold), "--pred", str(preds)])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output.strip().splitlines()[-1])
    assert scored["string"]["f1"] == 1.0


def test_annotate_rejects_bad_input(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"txt": "no text field"}\n')
    result = runner.invoke(app, ["annotate", str(src), str(tmp_path / "o.jsonl"), "--labels", "person"])
    assert result.exit_code != 0
    assert "has no 'text' field" in result.output


def test_calibrate_reports_reliability_on_fitted_and_held_out_texts(tmp_path):
    cfg = write_config(tmp_path)
    gold = person_gold(tmp_path)
    out = tmp_path / "calibration.json"
    result = runner.invoke(app, ["calibrate", str(gold), "--output", str(out), "--limit", "4", "--holdout", "4",
                                 "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["candidates"] == 12 and summary["correct"] == 6
    saved = json.loads(out.read_text())
    assert saved["holdout"]["candidates"] == 12 and saved["fitted"]["ece"] <= saved["fitted"]["ece_uncalibrated"]
    assert sum(r["count"] for r in saved["holdout"]["reliability"]) == 12
    result = runner.invoke(app, ["calibrate", str(gold), "--output", str(out), "--holdout", "4", "--config", str(cfg)])
    assert result.exit_code == 2 and "holdout needs limit" in result.output
    for bad, said in (("{model", "--backend is not JSON"), ('["embedded-gemma"]', "must be a JSON object")):
        result = runner.invoke(app, ["calibrate", str(gold), "--output", str(out), "--backend", bad])
        assert result.exit_code == 2 and said in result.output, result.output
