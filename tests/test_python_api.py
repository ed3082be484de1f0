"""Distilling and calibrating are Python functions first (the CLI only parses arguments and calls them):
called directly here, over the canned backend, since what is tested is the orchestration."""
import json

import pytest
import spacy
from conftest import TINY_FACTS, canned, person_gold

from uniner_spacy.distill import DistillResult, SilverFilters, distill_pipeline
from uniner_spacy.errors import ConfigError, InputError, UninerError
from uniner_spacy.evaluation import fit_calibration
from uniner_spacy.runs import RunMismatch

TEXTS = sorted({p for p, _ in TINY_FACTS})
LABELS = ["person", "organization", "location"]


def teacher_config(tmp_path, **settings):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": LABELS, "backend": canned(**settings)})
    path = tmp_path / "teacher.cfg"
    nlp.config.to_disk(path)
    return path


def corpus(tmp_path, texts):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(texts) + "\n")
    return path


def gold_file(tmp_path, texts):
    """The canned teacher's own answers as gold (persons, organizations and locations where it finds them)."""
    from conftest import CANNED_ANSWERS

    rows = [{"sentence": t, "entities": [{"name": n, "type": label, "pos": [t.index(n), t.index(n) + len(n)]}
                                         for label, names in CANNED_ANSWERS.items() for n in names if n in t]}
            for t in texts]
    path = tmp_path / "gold.json"
    path.write_text(json.dumps(rows))
    return path


def test_distill_pipeline_trains_packages_and_scores_a_student(tmp_path):
    lines = [f"{p} works for Acme Corp in {c}." for p in ("Alice Smith", "Bob Jones") for c in ("Berlin", "Paris")]
    said = []
    result = distill_pipeline(corpus(tmp_path, lines * 5), tmp_path / "out", config=teacher_config(tmp_path),
                              max_steps=10, gold=gold_file(tmp_path, TEXTS), echo=said.append)
    assert isinstance(result, DistillResult) and result.summary.ok
    assert result.pipeline == tmp_path / "out" / "pipeline"
    assert result.silver["documents"] == 20 and result.silver["entities"] == 60
    assert result.silver["train"] + result.silver["dev"] == 20 and result.thresholds is None
    assert spacy.load(result.pipeline).pipe_names == ["tok2vec", "ner"]
    assert set(result.metrics) >= {"f1", "p", "r"}  # scored on the gold, also written to metrics.json
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["f1"] == result.metrics["f1"]
    assert [line[:4] for line in said if line[1:4] == "/4 "] == ["1/4 ", "2/4 ", "3/4 ", "4/4 "]


def test_distill_pipeline_trains_nothing_on_an_incomplete_silver(tmp_path):
    out = tmp_path / "out"
    result = distill_pipeline(corpus(tmp_path, TEXTS * 3), out, config=teacher_config(tmp_path, errors=["location"]),
                              echo=lambda _: None)
    assert result.pipeline is None and not result.summary.ok
    assert (out / "silver.jsonl").exists() and not (out / "corpus").exists() and not (out / "training").exists()


def test_distill_pipeline_calibrates_the_thresholds_and_keeps_the_other_filters(tmp_path):
    filters = SilverFilters(consistency=0.5)
    out = tmp_path / "out"
    result = distill_pipeline(corpus(tmp_path, TEXTS * 3), out, config=teacher_config(tmp_path), filters=filters,
                              calibrate=gold_file(tmp_path, TEXTS), max_steps=5, echo=lambda _: None)
    assert set(result.thresholds) == set(LABELS) and (out / "calibration.jsonl").exists()
    assert result.silver["filters"]["min_score"] == result.thresholds
    assert result.silver["filters"]["consistency"] == 0.5
    assert filters.min_score == 0.0  # the caller's filters are left as they were


def test_distill_pipeline_says_what_cannot_run(tmp_path):
    text = corpus(tmp_path, TEXTS)
    with pytest.raises(InputError, match="does not exist"):
        distill_pipeline(tmp_path / "missing.txt", tmp_path / "out", labels=["person"])
    with pytest.raises(ConfigError, match="dev_share"):
        distill_pipeline(text, tmp_path / "out", labels=["person"], dev_share=1.0)
    out = tmp_path / "out"
    quiet = {"echo": lambda _: None}
    with pytest.raises(InputError, match="too few to train on"):  # one document: held out for dev, none left
        distill_pipeline(corpus(tmp_path, TEXTS[:1]), out, config=teacher_config(tmp_path), **quiet)
    # a silver another teacher wrote is not resumed by this one, and the message says how to start over
    with pytest.raises(RunMismatch, match="Delete .*silver.jsonl"):
        distill_pipeline(corpus(tmp_path, TEXTS[:1]), out, config=teacher_config(tmp_path, score=-1.0), **quiet)
    with pytest.raises(UninerError, match="does not exist"):
        distill_pipeline(corpus(tmp_path, TEXTS[:1]), out, config=teacher_config(tmp_path),
                         calibrate=tmp_path / "no-gold.json", **quiet)


def test_fit_calibration_writes_the_fit_and_reports_held_out_texts(tmp_path):
    gold = person_gold(tmp_path)
    out = tmp_path / "calibration.json"
    summary = fit_calibration([gold], out, limit=4, holdout=4, config=teacher_config(tmp_path))
    assert summary["candidates"] == 12 and summary["correct"] == 6 and summary["holdout"]["candidates"] == 12
    saved = json.loads(out.read_text())
    assert saved["fitted_on"] == [str(gold)] and saved["limit"] == 4
    # a third of the candidates is right: the fit maps every score there, where the raw scores said more
    assert saved["fitted"]["ece"] < saved["fitted"]["ece_uncalibrated"]
    with pytest.raises(ConfigError, match="holdout needs limit"):
        fit_calibration([gold], out, holdout=4, config=teacher_config(tmp_path))
    # backend settings instead of a config (how the Gemma student's fit is made): the same candidates
    again = fit_calibration([gold], tmp_path / "b.json", limit=4, backend=canned())
    assert again["candidates"] == 12 and again["correct"] == 6
    with pytest.raises(ConfigError, match="not both"):
        fit_calibration([gold], out, limit=4, config=teacher_config(tmp_path), backend=canned())
