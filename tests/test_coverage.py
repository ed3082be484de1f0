"""Every shared data file evaluates end to end: 100 sentences × up to 13 types.

Slow (56 files): the tiny LLaMA trained by conftest answers, so this proves
loading, querying, alignment and both protocols on every format, not quality.
"""
import os
from pathlib import Path

import pytest
import spacy

from uniner_spacy.evaluation.loaders import iter_data_files, load
from uniner_spacy.evaluation.runner import evaluate_pipeline

DATA = Path(os.environ.get("UNINER_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = list(iter_data_files(DATA, folders=("supervised", "zeroshot_dev", "pile_ner"), dedupe=False)) if DATA.is_dir() else []


@pytest.fixture(scope="module")
def tiny_nlp(tiny_model_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["entity"], "backend": {
        "@misc": "uniner.HF.v1", "model": str(tiny_model_dir), "max_new_tokens": 16, "batch_size": 64}})
    return nlp


@pytest.mark.slow
@pytest.mark.skipif(not FILES, reason=f"shared data not found at {DATA}")
@pytest.mark.parametrize("item", FILES, ids=[f"{f.folder}/{f.dataset}/{f.path.name}" for f in FILES])
def test_every_data_file_evaluates(item, tiny_nlp):
    examples = load(item.path, limit=100, source=item.dataset)
    assert 0 < len(examples) <= 100  # the GLiNER sample holds fewer
    labels = list(dict.fromkeys(l for eg in examples for l in eg.labels))[:13]
    assert labels, "no entity types found"

    def factory(ds_labels):
        tiny_nlp.get_pipe("uniner").initialize(labels=ds_labels)
        return tiny_nlp

    result = evaluate_pipeline(factory, examples, labels=labels, batch_size=64)["datasets"][item.dataset]
    assert result["examples"] == len(examples)
    assert result["llm_queries"] >= len(examples) * len(labels)
    assert 0.0 <= result["string"]["f1"] <= 1.0 and 0.0 <= result["span"]["f1"] <= 1.0
