"""The real embedded default model (slow: loads and runs SmolLM2 plus the shipped adapter)."""
import pytest
import spacy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "location"]})
    return nlp


def test_embedded_default_finds_entities(nlp):
    from uniner_spacy.weights import ADAPTER_DIR

    doc = nlp("Barack Obama visited Paris and Berlin last week.")
    stats = doc._.uniner_stats
    assert stats["queries"] == 2 and stats["backend_errors"] == 0
    if not (ADAPTER_DIR / "adapter_config.json").exists():
        pytest.skip("no student adapter shipped: the base model answers in prose")
    found = {(e.text, e.label_) for e in doc.ents}
    assert ("Barack Obama", "person") in found
    assert {("Paris", "location"), ("Berlin", "location")} & found
    assert stats["parse_failures"] == 0


def test_embedded_pipe_matches_single(nlp):
    texts = ["Angela Merkel spoke in Munich.", "", "Tokyo is in Japan.", "Москва — столица России."]
    piped = [[(e.text, e.label_) for e in d.ents] for d in nlp.pipe(texts, batch_size=4)]
    single = [[(e.text, e.label_) for e in nlp(t).ents] for t in texts]
    assert piped == single
