import pytest

from uniner_spacy.io import jsonl_rows


def test_bad_line_raises_with_file_and_line_or_is_skipped_and_reported(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a"}\n\n{broken\n{"text": "b"}\n', encoding="utf8")
    with pytest.raises(ValueError, match=r"rows.jsonl:3: not JSON"):
        list(jsonl_rows(path))
    messages = []
    assert list(jsonl_rows(path, on_bad=messages.append)) == [(1, {"text": "a"}), (4, {"text": "b"})]
    assert len(messages) == 1 and "rows.jsonl:3" in messages[0] and "skipped" in messages[0]
