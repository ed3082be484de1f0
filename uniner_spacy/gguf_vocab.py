"""A SentencePiece-BPE tokenizer rebuilt from a GGUF file's vocabulary (Gemma 3).

transformers (4.53) reads a Gemma GGUF's vocabulary as a unigram model and
takes its scores for log-probabilities. They are BPE ranks (`▁the` −12, `▁was`
−197), so the unigram model splits words into letters and pairs (`▁M ar ie`)
that the model never saw. Here the vocabulary becomes what it is, a BPE
model: its merges are every split of a piece into two pieces, ordered by the
piece's score (`transformers.convert_slow_tokenizer.generate_merges`, as
transformers' own SentencePiece converter builds Gemma's tokenizer.json),
with byte fallback, spaces written `▁`, and the file's control and
user-defined pieces (`<bos>`, `<end_of_turn>`, `\\n`, runs of spaces) as added
tokens, control pieces special. Gemma's own normaliser, decoder and BOS
follow `GemmaConverter` and `GemmaTokenizerFast`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple, Union

from .errors import ModelNotFound

# llama.cpp's token types (gguf.TokenType)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def read_vocab(gguf_file: Union[str, Path]) -> Tuple[List[str], List[float], List[int], Dict[str, int]]:
    """(pieces, scores, token types, {special role: id}) of a GGUF's `tokenizer.ggml.*` fields."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_file))

    def field(name: str):
        f = reader.fields.get(f"tokenizer.ggml.{name}")
        return None if f is None else f.contents()

    def values(name: str) -> list:
        """An array field's items straight from the reader's parts (`contents()` takes ~30 s for 262k)."""
        f = reader.fields[f"tokenizer.ggml.{name}"]
        return [f.parts[i] for i in f.data]

    model = field("model")
    if model != "llama":
        raise ModelNotFound(f"{gguf_file} holds a {model!r} tokenizer, not a SentencePiece ('llama') one")
    roles = {role: int(field(f"{role}_token_id")) for role in ("bos", "eos", "unknown", "padding")
             if field(f"{role}_token_id") is not None}
    pieces = [bytes(p).decode("utf-8") for p in values("tokens")]
    return pieces, [float(x[0]) for x in values("scores")], [int(x[0]) for x in values("token_type")], roles


def bpe_tokenizer(pieces: List[str], scores: List[float], types: List[int], roles: Dict[str, int],
                  eos: str = "", add_bos: bool = True):
    """A `GemmaTokenizerFast` over the BPE model of these pieces; `eos`: the piece that ends an answer."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from transformers import GemmaTokenizerFast
    from transformers.convert_slow_tokenizer import generate_merges

    vocab = {piece: i for i, piece in enumerate(pieces)}
    # merges build normal pieces only: a control piece's text (`<bos>` in a passage) stays text
    scored = {p: s for p, s, t in zip(pieces, scores, types) if t == NORMAL}
    unk = pieces[roles.get("unknown", 3)]
    model = BPE(vocab=vocab, merges=generate_merges(vocab, scored), unk_token=unk, fuse_unk=True, byte_fallback=True)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")  # GemmaConverter's (spaces are `▁` by now)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_tokens([AddedToken(p, normalized=False, special=t == CONTROL)
                    for p, t in zip(pieces, types) if t in (CONTROL, USER_DEFINED)])
    return GemmaTokenizerFast(
        tokenizer_object=tok, bos_token=pieces[roles["bos"]], eos_token=eos or pieces[roles["eos"]],
        unk_token=unk, pad_token=pieces[roles.get("padding", 0)], add_bos_token=add_bos, add_eos_token=False,
    )


def gguf_bpe_tokenizer(gguf_file: Union[str, Path], eos: str = "", add_bos: bool = True):
    """The BPE tokenizer of a SentencePiece GGUF (`bpe_tokenizer` over `read_vocab`)."""
    return bpe_tokenizer(*read_vocab(gguf_file), eos=eos, add_bos=add_bos)
