"""evaluation.paired: the paired bootstrap behind benchmarks/paired.py's run-against-run comparisons."""
import pytest

from uniner_spacy.evaluation.paired import compare, sentence_counts


def _query(text, label, mentions, source="ds"):
    return {"text": text, "type": label, "prediction": mentions, "source": source}


GOLD = [_query(f"sentence {i}", t, [f"m{i}"] if t == "person" else []) for i in range(8) for t in ("person", "place")]


def test_counts_are_per_sentence_over_its_types():
    pred = [_query(g["text"], g["type"], ["m0", "x"] if g["text"] == "sentence 0" and g["type"] == "place" else [])
            for g in GOLD]
    counts = sentence_counts(GOLD, pred)["ds"]
    assert counts[0] == (0, 2, 1)  # two wrong mentions under `place`, the person missed
    assert counts[1] == (0, 0, 1)


def test_same_predictions_differ_by_nothing_and_better_ones_are_never_lower():
    exact = sentence_counts(GOLD, GOLD)
    half = sentence_counts(GOLD, [g if g["text"] < "sentence 4" else _query(g["text"], g["type"], []) for g in GOLD])
    same = compare(half, half, draws=200)["mean"]
    assert same["diff"] == 0 and same["ci95"] == [0.0, 0.0] and same["p_b_lower"] == 0.0
    better = compare(half, exact, draws=200)["mean"]
    assert better["diff"] > 0 and better["ci95"][0] > 0 and better["p_b_lower"] == 0.0


def test_predictions_for_other_queries_are_refused():
    with pytest.raises(ValueError, match="not for the gold queries"):
        sentence_counts(GOLD, [_query("other", g["type"], []) for g in GOLD])
