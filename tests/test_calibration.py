import json

import pytest
import spacy
from conftest import canned

from uniner_spacy.pipeline.calibration import Calibrator, fit, make_calibration


def test_fit_is_monotone_and_calibrated():
    scores = [i / 100 for i in range(100)]
    correct = [s > 0.5 for s in scores]
    cal = fit(scores, correct)
    ys = [cal(x / 10) for x in range(11)]
    assert ys == sorted(ys)
    assert cal(0.1) == pytest.approx(0.0, abs=1e-8) and cal(0.9) == pytest.approx(1.0)


def test_round_trip_and_bad_file(tmp_path):
    cal = Calibrator([0.0, 0.5, 1.0], [0.1, 0.2, 0.9])
    cal.to_disk(tmp_path / "c.json", fitted_on=["x"])
    again = Calibrator.from_disk(tmp_path / "c.json")
    assert again(0.75) == pytest.approx(0.55)
    (tmp_path / "bad.json").write_text(json.dumps({"xs": [1, 0], "ys": [0, 1]}))
    with pytest.raises(ValueError):
        Calibrator.from_disk(tmp_path / "bad.json")
    missing = make_calibration(str(tmp_path / "missing.json"))  # a moved pipeline's from_disk may still fill it
    with pytest.raises(FileNotFoundError):
        missing(0.5)


def test_component_applies_calibration(tmp_path):
    Calibrator([0.0, 1.0], [0.0, 0.5]).to_disk(tmp_path / "c.json")
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person"], "calibration": {
        "@misc": "uniner.Calibration.v1", "path": str(tmp_path / "c.json")}, "backend": canned(score=-0.2)})
    doc = nlp("Bob Jones flew to Paris with Alice Smith.")
    assert len(doc.ents) == 2
    for e in doc.ents:
        assert e._.uniner_score == pytest.approx(e._.uniner_raw_score / 2)


def test_reliability_table_and_expected_calibration_error():
    from uniner_spacy.pipeline.calibration import expected_calibration_error, reliability

    scores = [0.05] * 10 + [0.95] * 10 + [1.0]
    correct = [False] * 9 + [True] + [True] * 9 + [False] + [True]
    table = reliability(scores, correct, bins=10)
    # empty bins are left out; 1.0 is in the last
    assert [(r["low"], r["count"]) for r in table] == [(0.0, 10), (0.9, 11)]
    assert table[0]["precision"] == pytest.approx(0.1) and table[1]["precision"] == pytest.approx(10 / 11, abs=1e-4)
    gap = (10 * abs(0.05 - 0.1) + 11 * abs(table[1]["score"] - 10 / 11)) / 21
    assert expected_calibration_error(table) == pytest.approx(gap, abs=1e-4)
    assert expected_calibration_error([]) == 0.0


def test_calibration_keeps_the_order_of_scores_it_maps():
    """Flat isotonic steps must not turn a higher score into a tie: doc.ents picks overlaps by score."""
    cal = Calibrator([0.0, 0.5, 1.0], [0.1, 0.3, 0.3])
    assert cal(0.8) < cal(0.9) < cal(1.0)
    assert cal(0.9) == pytest.approx(0.3, abs=1e-8)
    assert 0.0 <= Calibrator([0.5, 1.0], [0.0, 1.0])(0.0) and Calibrator([0.5, 1.0], [0.0, 1.0])(1.0) <= 1.0


def test_a_label_with_enough_candidates_gets_its_own_mapping(tmp_path):
    scores = [i / 400 for i in range(400)] * 2
    labels = ["person"] * 400 + ["anatomy"] * 400
    correct = [s > 0.2 for s in scores[:400]] + [s > 0.9 for s in scores[400:]]  # person is right far more often
    cal = fit(scores, correct, labels=labels, min_per_label=300)
    assert set(cal.labels) == {"person", "anatomy"}
    assert cal(0.5, "person") == pytest.approx(1.0, abs=1e-6) and cal(0.5, "anatomy") == pytest.approx(0.0, abs=1e-6)
    assert 0.2 < cal(0.5, "politician") < 0.8  # not fitted: the mapping of every label
    assert cal(0.5, "Person") == cal(0.5, "person")  # labels are matched by label_key, as everywhere
    cal.to_disk(tmp_path / "c.json")
    again = Calibrator.from_disk(tmp_path / "c.json")
    assert again(0.5, "person") == cal(0.5, "person") and again(0.5) == cal(0.5)
    assert fit(scores, correct, labels=labels, min_per_label=1000).labels == {}
