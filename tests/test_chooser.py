"""The trained chooser (`uniner.Chooser.v1`): trained on a tiny fixture, it flips a known confusion.

The fixture's claims teach what CrossNER's convention is: where `person` and `writer` both claim a
name, the gold is `writer`; `person` alone is right. Without the chooser the tie goes to the label
asked first (`person`); after `training.chooser.fit` on the fixture, the same canned answers give
`writer`. The features are the real ones (MiniLM, en_core_web_sm), as the stage computes them in use.
"""
import json

import numpy as np
import pytest
import spacy

from training.chooser import fit
from uniner_spacy.errors import ConfigError
from uniner_spacy.stages.chooser import FEATURES, ChooserWeights

NAMES = ["Tolkien", "Orwell", "Austen", "Dickens", "Tolstoy", "Woolf", "Joyce", "Kafka", "Camus", "Hugo"]
PEOPLE = ["Smith", "Jones", "Brown", "Miller", "Davis", "Wilson", "Moore", "Taylor", "Clark", "Lewis"]


def fixture_rows():
    rows = []
    for name in NAMES:  # both labels claim the writer; the gold is the specific label
        text = f"{name} wrote a long novel about the war."
        rows.append({"source": "books", "text": text, "labels": ["person", "writer"],
                     "candidates": [[0, len(name), "person", 0.9, "person", "exact"],
                                    [0, len(name), "writer", 0.9, "writer", "exact"]],
                     "gold": [[0, len(name), "writer"]]})
    for name in PEOPLE:  # `person` alone: right
        text = f"Mr {name} met the mayor in the town hall."
        rows.append({"source": "news", "text": text, "labels": ["person", "writer"],
                     "candidates": [[3, 3 + len(name), "person", 0.9, "person", "exact"]],
                     "gold": [[3, 3 + len(name), "person"]]})
    return rows


@pytest.fixture(scope="module")
def weights_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chooser")
    claims = folder / "claims.jsonl"
    claims.write_text("".join(json.dumps(r) + "\n" for r in fixture_rows()))
    meta = fit(claims, folder)
    assert meta["claims"] == 30 and meta["right"] == 20
    return folder / "weights.json"


def pipe(stages):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "writer"], "stages": stages, "backend": {
        "@misc": "uniner.Canned.v1", "answers": {"person": ["Hemingway"], "writer": ["Hemingway"]}}})
    return nlp


def test_a_trained_chooser_flips_a_known_confusion(weights_path):
    text = "Hemingway wrote a short novel about the sea."
    (before,) = pipe({})(text).ents
    assert before.label_ == "person"
    doc = pipe({"chooser": {"@misc": "uniner.Chooser.v1", "weights": str(weights_path)}})(text)
    (after,) = doc.ents
    assert after.label_ == "writer"
    claims = {s.label_: s for s in doc.spans["uniner"]}
    # every candidate keeps its own new score and the student's old one
    assert claims["writer"]._.uniner_score > claims["person"]._.uniner_score
    assert claims["person"]._.uniner_raw_score == claims["writer"]._.uniner_raw_score


def test_weights_of_another_feature_list_are_refused(tmp_path, weights_path):
    data = json.loads(weights_path.read_text())
    data["features"] = list(FEATURES[:-1])
    bad = tmp_path / "weights.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="another version or feature list"):
        ChooserWeights.load(bad)
    loaded = ChooserWeights.load(weights_path)
    assert loaded.coef.shape == (len(FEATURES),) and np.isfinite(loaded.coef).all()


def test_most_fines_label_sets_leave_the_generic_what_the_fine_types_leave():
    """`fines="most"` shows every named fine type of a generic, or all but one, so the generic keeps
    only the mentions no shown fine type covers (CrossNER's convention); "few" shows one to three."""
    from training.chooser import regrouped_sets
    from training.mixture import MULTICONER_GROUPS
    from uniner_spacy.errors import InputError
    from uniner_spacy.types import AnnotatedText, Entity

    text = "Obama met Messi and Bach in Rome."
    ents = [Entity(text.index(m), text.index(m) + len(m), lab) for m, lab in
            (("Obama", "politician"), ("Messi", "athlete"), ("Bach", "other person"), ("Rome", "human settlement"))]
    ex = AnnotatedText(text, ents, ["politician", "athlete", "other person", "human settlement"], "multiconer2_en")
    named = {g: [f for f in fines if not f.startswith("other ")] for g, fines in MULTICONER_GROUPS.items()}
    for fines, lo, hi in (("most", lambda n: n - 1, lambda n: n), ("few", lambda n: 1, lambda n: min(3, n))):
        out = regrouped_sets([ex] * 24, 24, seed=0, fines=fines)
        assert len(out) == 24
        for grouped in out:
            for g, fs in named.items():
                shown = [f for f in fs if f in grouped.labels]
                assert g in grouped.labels and max(1, lo(len(fs))) <= len(shown) <= hi(len(fs)), (fines, g, shown)
            got = {text[e.start : e.end]: e.label for e in grouped.entities}
            assert got["Bach"] == "person"  # an `other` fine type is never shown: the generic's
            assert got["Obama"] == ("politician" if "politician" in grouped.labels else "person")
    with pytest.raises(InputError, match="fines must be one of"):
        regrouped_sets([ex], 1, seed=0, fines="all")


def test_claims_are_resumed_only_with_the_options_that_chose_them(tmp_path):
    """A resumed collection skips the passages already written, so one started with `--fines most`
    and continued with `few` would mix two label conventions in one file: refused, before the model
    loads; claims without a record of their options are refused too."""
    from training.chooser import collect, options_file
    from uniner_spacy.errors import InputError

    out = tmp_path / "claims.jsonl"
    options_file(out).write_text(json.dumps({"regrouped": 400, "per_set": 30, "seed": 0, "fines": "most"}))
    out.write_text(json.dumps(fixture_rows()[0]) + "\n")
    with pytest.raises(InputError, match="collected with .*'fines': 'most'.*own --out"):
        collect(out, data=tmp_path, fines="few")
    options_file(out).unlink()
    with pytest.raises(InputError, match="no claims.run.json"):
        collect(out, data=tmp_path, fines="most")
    assert out.read_text() == json.dumps(fixture_rows()[0]) + "\n"  # nothing written
