import spacy

from uniner_spacy.backends.base import approx_token_offsets
from uniner_spacy.pipeline.chunking import chunk_text, doc_units

nlp = spacy.blank("en")


def test_short_doc_is_one_passage():
    doc = nlp("Obama visited Paris. He liked it.")
    ps = chunk_text(doc.text, approx_token_offsets(doc.text), doc_units(doc), 256, 32)
    assert len(ps) == 1 and ps[0].text == doc.text and ps[0].start == 0


def test_long_doc_splits_on_sentences_with_overlap_and_offsets():
    sents = [f"Sentence number {i} mentions Paris and Berlin." for i in range(60)]
    text = " ".join(sents)
    doc = nlp(text)
    ps = chunk_text(text, approx_token_offsets(text), doc_units(doc), 40, 10)
    assert len(ps) > 5
    for p in ps:
        assert text[p.start : p.start + len(p.text)] == p.text
        assert p.n_tokens <= 40
        assert p.text.startswith("Sentence") and p.text.endswith(".")
    # every sentence is covered, consecutive passages overlap
    covered = set()
    for p in ps:
        covered.update(range(p.start, p.start + len(p.text)))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert all(b.start < a.start + len(a.text) for a, b in zip(ps, ps[1:]))


def test_overlong_sentence_is_cut_by_tokens_not_truncated():
    text = " ".join(["word"] * 1000)  # one "sentence", no punctuation
    doc = nlp(text)
    ps = chunk_text(text, approx_token_offsets(text), doc_units(doc), 256, 32)
    assert len(ps) >= 4
    assert ps[-1].start + len(ps[-1].text) == len(text)
    assert all(p.n_tokens <= 256 for p in ps)


def test_whitespace_doc_has_no_passages():
    doc = nlp("   \n ")
    assert chunk_text(doc.text, approx_token_offsets(doc.text), doc_units(doc)) == []
