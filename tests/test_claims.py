"""benchmarks/claims.py: spans that several labels claim, counted from a predictions file."""
import json

from claims import claims


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
