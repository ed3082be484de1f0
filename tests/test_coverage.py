"""Every shared data file evaluates end to end: 100 sentences × up to 13 types.

Loading, querying, alignment and both protocols on every format, not quality: the canned
backend answers each type's gold mentions (wherever they occur), so what it finds shows that
answers align and score on this format. Slow only for the count (56 files); the real models'
answers are tested elsewhere.
"""
import os
from pathlib import Path

import pytest
import spacy

from uniner_spacy.evaluation.loaders import iter_data_files, load
from uniner_spacy.evaluation.runner import evaluate_pipeline

DATA = Path(os.environ.get("UNINER_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = (
    list(iter_data_files(DATA, folders=("supervised", "zeroshot_dev", "pile_ner"), dedupe=False))
    if DATA.is_dir()
    else []
)


def gold_answers(examples):
    """{label: its gold mention texts}, for the canned backend to answer with."""
    answers = {}
    for eg in examples:
        for e in eg.entities:
            answers.setdefault(e.label, {})[eg.text[e.start : e.end]] = None
    return {label: list(mentions) for label, mentions in answers.items()}


@pytest.mark.slow
@pytest.mark.skipif(not FILES, reason=f"shared data not found at {DATA}")
@pytest.mark.parametrize("item", FILES, ids=[f"{f.folder}/{f.dataset}/{f.path.name}" for f in FILES])
def test_every_data_file_evaluates(item):
    examples = load(item.path, limit=100, source=item.dataset)
    assert 0 < len(examples) <= 100  # the GLiNER sample holds fewer
    labels = list(dict.fromkeys(l for eg in examples for l in eg.labels))[:13]
    assert labels, "no entity types found"
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["entity"], "stages": {}, "backend": {
        "@misc": "uniner.Canned.v1", "answers": gold_answers(examples)}})

    def factory(ds_labels):
        nlp.get_pipe("uniner").initialize(labels=ds_labels)
        return nlp

    result = evaluate_pipeline(factory, examples, labels=labels, batch_size=64)["datasets"][item.dataset]
    assert result["examples"] == len(examples)
    assert result["llm_queries"] >= len(examples) * len(labels)
    assert 0.0 <= result["string"]["f1"] <= 1.0 and 0.0 <= result["span"]["f1"] <= 1.0
    # the gold answered, most of it is found (of overlapping or nested mentions doc.ents keeps one)
    assert result["string"]["recall"] >= 0.6 and result["span"]["recall"] >= 0.6
