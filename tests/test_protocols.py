"""Both scoring protocols with hand-computed figures, score_files, the runner and the report."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from uniner_spacy.evaluation import (
    PRF,
    benchmark_score,
    examples_to_predictions,
    iter_data_files,
    load_report,
    normalize_answer,
    official_answer_items,
    score_files,
)
from uniner_spacy.evaluation.protocols import normalized_set, score_strings, span_counts, string_counts, write_jsonl
from uniner_spacy.types import AnnotatedText, Entity

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("UNINER_DATA", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder {DATA} absent (set UNINER_DATA)")


# ---------------------------------------------------------------- string protocol


def test_normalize_answer():
    assert normalize_answer("The  White-House.") == "whitehouse"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("Theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("U.S.") == "us"


def test_official_answer_items_follow_official_regex():
    assert official_answer_items('["a", "b"]') == (["a", "b"], True)
    assert official_answer_items('["Paris"] and more') == (["Paris"], True)
    assert official_answer_items('Sure: ["Paris"]') == ([], False)  # must start with [
    assert official_answer_items(' ["Paris"]') == ([], False)
    assert official_answer_items('["a]b"]') == ([], False)  # cut at the first ]
    assert official_answer_items('["unterminated') == ([], False)
    assert normalized_set('["x", 3]') == []  # a non-string item empties the answer
    assert normalized_set([["Obama", "PERSON"], ("obama", "person")]) == [("obama", "person")]


def test_string_protocol_hand_computed():
    queries = [
        # duplicates, case and punctuation variants, articles: 4 distinct preds, 3 gold, 3 right
        (["barack obama", "Obama.", "OBAMA", "White House", "Senate"], ["Barack Obama", "Obama", "the White House"]),
        ('Sure: ["New York"]', ["New York"]),  # malformed: empty prediction, 1 missed
        ('["A", "An apple"]', []),  # normalise to "" and "apple": 2 wrong
        (["u.s"], ["U.S.", "US"]),  # gold de-duplicated to {"us"}: 1 right
        ('["x", 3]', ["x"]),  # non-string item: empty prediction, 1 missed
        ('["Paris"] trailing', ["Paris"]),  # leading list read, rest ignored: 1 right
    ]
    per_query = [string_counts(p, g) for p, g in queries]
    assert [(c.tp, c.fp, c.fn) for c in per_query] == [(3, 1, 0), (0, 0, 1), (0, 2, 0), (1, 0, 0), (0, 0, 1), (1, 0, 0)]
    total = score_strings(queries)
    assert (total.tp, total.fp, total.fn) == (5, 3, 2)
    assert total.precision == pytest.approx(5 / 8)
    assert total.recall == pytest.approx(5 / 7)
    assert total.f1 == pytest.approx(2 / 3)


def test_benchmark_is_mean_of_dataset_f1():
    assert benchmark_score({"a": 0.5, "b": 1.0, "c": 0.0}) == pytest.approx(0.5)
    assert benchmark_score({}) == 0.0
    assert PRF().f1 == 0.0 and PRF(0, 0, 3).recall == 0.0


# ---------------------------------------------------------------- span protocol


def test_span_protocol_hand_computed():
    gold = [(0, 5, "person"), (10, 15, "location")]
    pred = [(0, 5, "person"), (10, 14, "location"), (20, 25, "organization"), (0, 5, "person")]
    c = span_counts(pred, gold)
    assert (c.tp, c.fp, c.fn) == (1, 2, 1)
    assert c.precision == pytest.approx(1 / 3) and c.recall == pytest.approx(1 / 2)
    assert c.f1 == pytest.approx(0.4)
    assert span_counts([(0, 5, "location")], [(0, 5, "person")]).tp == 0  # type must match


# ---------------------------------------------------------------- score_files


@pytest.fixture
def bio_gold(tmp_path: Path) -> Path:
    path = tmp_path / "toyset" / "test.tsv"
    path.parent.mkdir()
    path.write_text("John\tB-person\nSmith\tI-person\nin\tO\nParis\tB-location\n\nThe\tO\nUN\tB-organization\nmet\tO\n\n",
                    encoding="utf-8")
    return path


def test_score_files_gold_equals_predictions(bio_gold, tmp_path):
    loaded = load_report(bio_gold)
    preds = tmp_path / "pred.jsonl"
    write_jsonl(examples_to_predictions(loaded.examples), preds)
    result = score_files(bio_gold, preds)
    assert result["queries"] == 6  # 2 sentences × 3 labels
    assert result["string"]["f1"] == 1.0 and result["span"]["f1"] == 1.0
    assert result["dataset"] == "toyset" and result["format"] == "bio"


def test_score_files_hand_computed(bio_gold, tmp_path):
    text1, text2 = "John Smith in Paris", "The UN met"
    rows = [
        {"text": text1, "type": "person", "prediction": ["john smith", "Paris"], "spans": [[0, 10], [14, 19]]},
        {"text": text1, "type": "location", "prediction": '["Paris"]', "spans": [[14, 19]]},
        # (text1, organization) has no prediction: counts as an empty answer
        {"text": text2, "type": "organization", "prediction": "UN", "spans": [[4, 6]]},  # malformed string
        {"text": text2, "type": "person", "prediction": [], "spans": []},
        {"text": "not in gold", "type": "person", "prediction": ["x"]},
    ]
    preds = tmp_path / "pred.jsonl"
    preds.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = score_files(bio_gold, preds)
    assert result["missing_predictions"] == 2  # (text1, org) and (text2, location)
    assert result["extra_predictions"] == 1
    assert result["malformed_answers"] == 1
    # strings: person tp1 fp1 (Paris), location tp1, UN missed: tp2 fp1 fn1
    assert (result["string"]["tp"], result["string"]["fp"], result["string"]["fn"]) == (2, 1, 1)
    # spans: [14,19] as person is wrong, [4,6] organization right: tp3 fp1 fn0
    assert (result["span"]["tp"], result["span"]["fp"], result["span"]["fn"]) == (3, 1, 0)
    assert result["span"]["f1"] == pytest.approx(6 / 7)


def test_score_files_counts_unlocated_gold(tmp_path):
    conv = {"conversations": [{"from": "human", "value": "Text: a bar"},
                              {"from": "gpt", "value": "I've read this text."},
                              {"from": "human", "value": "What describes Amenity in the text?"},
                              {"from": "gpt", "value": '["bar", "pub"]'}]}
    gold = tmp_path / "official" / "mit.json"
    gold.parent.mkdir()
    gold.write_text(json.dumps([conv]), encoding="utf-8")
    preds = tmp_path / "pred.jsonl"
    write_jsonl([{"text": "a bar", "type": "Amenity", "prediction": ["bar"]}], preds)
    result = score_files(gold, preds)
    assert result["unlocated_gold"] == 1
    assert (result["string"]["tp"], result["string"]["fn"]) == (1, 1)  # "pub" still counts as gold
    assert result["span"] is None  # no prediction carried spans


@needs_data
def test_gold_as_predictions_scores_one_on_a_file_per_format(tmp_path):
    """Fast version: the first shared file of each format."""
    smallest = {}
    for df in iter_data_files(DATA, dedupe=False):
        if df.format not in smallest or df.path.stat().st_size < smallest[df.format].stat().st_size:
            smallest[df.format] = df.path
    for _fmt, path in smallest.items():
        _assert_gold_scores_one(path, tmp_path, limit=30)


@needs_data
@pytest.mark.slow
def test_gold_as_predictions_scores_one_on_every_shared_file(tmp_path):
    for df in iter_data_files(DATA, dedupe=False):
        _assert_gold_scores_one(df.path, tmp_path, limit=200)


def _assert_gold_scores_one(path: Path, tmp_path: Path, limit: int) -> None:
    loaded = load_report(path, limit=limit)
    preds = tmp_path / "pred.jsonl"
    write_jsonl(examples_to_predictions(loaded.examples, loaded.unlocated), preds)
    result = score_files(path, preds, limit=limit)
    assert result["missing_predictions"] == 0 and result["extra_predictions"] == 0, path
    for proto in ("string", "span"):
        prf = result[proto]
        assert prf["fp"] == 0 and prf["fn"] == 0, (path, proto, prf)
        assert prf["f1"] == 1.0 or prf["tp"] == 0, (path, proto, prf)


# ---------------------------------------------------------------- runner and report


def _ruler_factory(labels):
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "person", "pattern": "John Smith"},
                        {"label": "location", "pattern": "Paris"},
                        {"label": "location", "pattern": "London"}])
    return nlp


EXAMPLES = [
    AnnotatedText("John Smith flew to Paris", [Entity(0, 10, "person"), Entity(19, 24, "location")],
            ["person", "location"], "toy"),
    AnnotatedText("Mary Jones saw John Smith in London", [Entity(0, 10, "person"), Entity(15, 25, "person")],
            ["person", "location"], "toy"),
    AnnotatedText("London calling", [Entity(0, 6, "organization")], ["organization", "location"], "other"),
]


def test_evaluate_pipeline_with_entity_ruler(tmp_path):
    from uniner_spacy.evaluation import evaluate_pipeline

    seen_labels = []

    def factory(labels):
        seen_labels.append(list(labels))
        return _ruler_factory(labels)

    out = tmp_path / "pred.jsonl"
    result = evaluate_pipeline(factory, EXAMPLES, protocol="both", batch_size=2, predictions_path=out)
    assert seen_labels == [["person", "location"], ["organization", "location"]]
    toy, other = result["datasets"]["toy"], result["datasets"]["other"]
    # toy: person {John Smith} vs gold {John Smith} and {Mary Jones, John Smith}; location Paris right,
    # London predicted but not gold. strings tp3 fp1 fn1; spans the same.
    assert (toy["string"]["tp"], toy["string"]["fp"], toy["string"]["fn"]) == (3, 1, 1)
    assert (toy["span"]["tp"], toy["span"]["fp"], toy["span"]["fn"]) == (3, 1, 1)
    assert toy["queries"] == 4 and toy["examples"] == 2
    # other: London tagged location, gold says organization: tp0 fp1 fn1
    assert (other["string"]["tp"], other["string"]["fp"], other["string"]["fn"]) == (0, 1, 1)
    assert result["benchmark"]["string"] == pytest.approx((0.75 + 0.0) / 2)
    assert toy["sentences_per_second"] > 0 and toy["parse_failures"] == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and {"text", "type", "prediction", "spans", "source"} <= set(rows[0])
    # the written predictions score the same through score_files' code path
    assert rows[0] == {"text": "John Smith flew to Paris", "type": "person", "prediction": ["John Smith"],
                       "spans": [[0, 10]], "source": "toy"}


def test_evaluate_pipeline_reads_component_stats():
    from spacy.language import Language
    from spacy.tokens import Doc

    from uniner_spacy.evaluation.runner import evaluate_pipeline

    if not Doc.has_extension("uniner_stats"):
        Doc.set_extension("uniner_stats", default=None)

    @Language.component("test_uniner_stats")
    def set_stats(doc):
        doc._.uniner_stats = {"queries": 2, "parse_failures": 1, "unaligned": [["person", "Bob"]], "seconds": 0.5}
        return doc

    nlp = _ruler_factory(["person"])
    nlp.add_pipe("test_uniner_stats")
    result = evaluate_pipeline(nlp, EXAMPLES[:2], labels=["person"], protocol="string")
    toy = result["datasets"]["toy"]
    assert toy["llm_queries"] == 4 and toy["parse_failures"] == 2 and toy["unaligned"] == 2
    assert toy["span"] is None and toy["queries"] == 2
    assert toy["unaligned_sample"] == [["person", "Bob"], ["person", "Bob"]]
