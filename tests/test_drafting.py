"""Speculative decoding from the passage: fewer decode steps, the same answers."""
import pytest
from conftest import TINY_FACTS, embedded_tokenizer

from uniner_spacy.backends.hf.backend import HFBackend
from uniner_spacy.backends.hf.drafting import PassageDrafter
from uniner_spacy.types import Query


def test_a_mention_is_drafted_from_its_passage_and_the_frame_from_the_answer():
    tok = embedded_tokenizer()
    drafter = PassageDrafter(tok, ["C. Lewis and Warwickshire won."], tokens=3)
    warw = drafter(0, b"Warw", [])
    assert len(warw) == 3 and "ickshire won.".startswith(tok.decode(warw))
    assert tok.decode(drafter(0, b"C", [])).startswith(". Lewis")
    assert drafter(0, b"Atlantis", []) == []  # not passage text: nothing to draft
    comma, space_quote, other = tok.encode('",', add_special_tokens=False)[0], 1, 2
    assert drafter(0, b"", [comma, space_quote, other, comma]) == [space_quote, other, comma]
    assert drafter(0, b"", []) == []


def _decoder_calls(backend, queries):
    decoder = backend.model.get_decoder()
    calls = []
    forward = decoder.forward
    decoder.forward = lambda *a, **k: calls.append(k["input_ids"].shape) or forward(*a, **k)
    try:
        return backend(queries), calls
    finally:
        del decoder.forward


@pytest.mark.parametrize("prefix_sharing", [False, True])
@pytest.mark.parametrize("max_new_tokens", [3, 24])
def test_drafts_change_the_steps_not_the_answers(tiny_model_dir, prefix_sharing, max_new_tokens):
    queries = [Query(p, t, t) for (p, t) in TINY_FACTS]
    runs = []
    for draft_tokens in (0, 4):
        backend = HFBackend(str(tiny_model_dir), max_new_tokens=max_new_tokens, constrained=True, dtype="float32",
                            prefix_sharing=prefix_sharing, draft_tokens=draft_tokens)
        runs.append(_decoder_calls(backend, queries))
    (plain, plain_calls), (drafted, drafted_calls) = runs
    assert [g.text for g in drafted] == [g.text for g in plain]
    assert [g.finish_reason for g in drafted] == [g.finish_reason for g in plain]
    for a, b in zip(plain, drafted):
        assert [p for p, _ in a.token_logprobs] == [p for p, _ in b.token_logprobs]
        assert [lp for _, lp in a.token_logprobs] == pytest.approx([lp for _, lp in b.token_logprobs], abs=1e-4)
    if max_new_tokens > 3:
        assert len(drafted_calls) < len(plain_calls)  # drafts were run and kept


def test_draft_tokens_must_not_be_negative():
    with pytest.raises(ValueError, match="draft_tokens"):
        HFBackend(draft_tokens=-1)


@pytest.mark.slow
def test_the_embedded_student_answers_the_same_with_drafts():
    texts = ["C. Lewis and G. Kersey played for Warwickshire at Edgbaston on Friday.",
             "Dynamo Moscow beat Alania Vladikavkaz 2-1 in the Russian premier league.",
             "Barack Obama met Angela Merkel in Berlin to discuss NATO and the European Union."]
    queries = [Query(t, label, label) for t in texts for label in ("person", "organization", "location", "misc")]
    backend = HFBackend(dtype="float32", draft_tokens=0)
    plain, plain_calls = _decoder_calls(backend, queries)
    backend.draft_tokens = 4
    drafted, calls = _decoder_calls(backend, queries)
    assert len(calls) < len(plain_calls)
    assert [g.text for g in drafted] == [g.text for g in plain]
    for a, b in zip(plain, drafted):
        assert [lp for _, lp in a.token_logprobs] == pytest.approx([lp for _, lp in b.token_logprobs], abs=1e-4)
