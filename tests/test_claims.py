"""evaluation.claims (benchmarks/claims.py): spans that several labels claim, counted from a predictions file."""
import json

from uniner_spacy.evaluation.claims import claims


def test_a_span_claimed_by_two_labels_counts_once_per_text(tmp_path):
    rows = [
        {"text": "Acme hired Bob.", "type": "organization", "candidates": [[0, 4]], "spans": [[0, 4]], "source": "a"},
        {"text": "Acme hired Bob.", "type": "university", "candidates": [[0, 4]], "spans": [], "source": "a"},
        {"text": "Acme hired Bob.", "type": "person", "candidates": [[11, 14]], "spans": [[11, 14]], "source": "a"},
        {"text": "Bob left.", "type": "person", "spans": [[0, 3]], "source": "b"},  # an older file: spans only
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = claims(path)
    assert out["a"] == {"spans": 2, "multi_label": 1, "share": 0.5}
    assert out["b"]["multi_label"] == 0 and out["all"]["spans"] == 3 and out["all"]["mean_share"] == 0.25


def test_claims_split_by_the_gold(tmp_path):
    """A specific gold label with only a generic one beside it, siblings, and a span the gold does not have."""
    text = "Orwell wrote Animal Farm with Acme."
    rows = [{"text": text, "type": t, "candidates": spans, "spans": spans, "source": "a"} for t, spans in [
        ("writer", [[0, 6]]), ("person", [[0, 6]]),
        ("book", [[13, 24]]), ("song", [[13, 24]]), ("person", [[13, 24]]),
        ("organization", [[30, 34]]), ("band", [[30, 34]])]]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = claims(path, gold={(text, 0, 6): "writer", (text, 13, 24): "book"})
    assert {k: out["a"][k] for k in ("multi_label", "generic_others", "gold_among", "gold_elsewhere")} == {
        "multi_label": 3, "generic_others": 1, "gold_among": 1, "gold_elsewhere": 1}
    assert ["writer", "person", 1] in out["all"]["top_pairs"] and ["book", "song", 1] in out["all"]["top_pairs"]


def test_which_label_doc_ents_kept_where_a_generic_and_a_specific_one_competed(tmp_path):
    """`spans` is what doc.ents wrote (one label a span), `candidates` what every label claimed."""
    text = "Orwell met Blair and Acme."
    rows = [{"text": text, "type": t, "candidates": c, "spans": s, "source": "a"} for t, c, s in [
        ("writer", [[0, 6], [11, 16]], [[0, 6], [11, 16]]),
        ("person", [[0, 6], [11, 16]], []),
        ("organization", [[21, 25]], [[21, 25]]), ("company", [[21, 25]], [])]]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gold = {(text, 0, 6): "writer", (text, 11, 16): "person", (text, 21, 25): "company"}
    out = claims(path, gold=gold)["all"]
    assert out["specific_gold_kept"] == {"gold": 1, "generic": 1}  # Orwell right; Acme kept as organization
    assert out["generic_gold_kept"] == {"specific": 1}  # Blair, a person, kept as writer
