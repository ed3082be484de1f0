"""Greedy decoding with finished rows dropped equals transformers' generate."""
import pytest

from uniner_spacy.backends.base import common_head
from uniner_spacy.backends.decoding import greedy_decode

from conftest import TINY_FACTS

TEXTS = sorted({p for p, _ in TINY_FACTS})


@pytest.mark.parametrize(
    "texts,head",
    [
        (["USER: What describes person in the text?", "USER: What describes location in the text?"], "USER: What describes"),
        (["USER: What describes person in the text?"], "USER: What describes person in the"),
        (["abc", "abd"], ""),
        ([" x", " y"], ""),
        (["a  b", "a  c"], ""),  # a run of spaces is its own token: never cut inside it
        ([], ""),
    ],
)
def test_common_head_ends_before_a_word(texts, head):
    assert common_head(texts) == head


def test_greedy_decode_equals_generate(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok.padding_side = "left"
    prompts = [f"Text: {t} What describes person in the text?" for t in TEXTS] + ["Short."]
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        ref = model.generate(**enc, do_sample=False, max_new_tokens=12, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id, output_scores=True, return_dict_in_generate=True)
        ref_lp = model.compute_transition_scores(ref.sequences, ref.scores, normalize_logits=True)
    rows = greedy_decode(model, enc.input_ids, enc.attention_mask, eos_id=tok.eos_token_id, max_new_tokens=12)
    width = enc.input_ids.shape[1]
    for row, seq, lps in zip(rows, ref.sequences[:, width:].tolist(), ref_lp.tolist()):
        n = len(row)
        assert [t for t, _ in row] == seq[:n]
        assert n == 12 or seq[n - 1] == tok.eos_token_id
        # generate's own scores differ from a plain forward pass by ~1e-3 here; ours match the forward pass
        assert [lp for _, lp in row] == pytest.approx(lps[:n], abs=5e-3)
