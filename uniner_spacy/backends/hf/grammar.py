"""Constrained decoding: the answer can only be a JSON list of passage substrings.

A byte-level automaton accepts ` [`, then `"mention"` items separated by
`, `, then `]`; a mention must be a span of the passage that starts and ends
on word boundaries: the pipeline's token boundaries when the query carries
them (`Query.words`), so that alignment can place every mention. At each step
the allowed tokens are found by walking the tokenizer's vocabulary trie and
the passage's candidate trie together, so the model can never hallucinate a
mention or break the JSON, and it stops as soon as the list closes.

A mention may be given again (parsing drops the copy): forbidding it pushed a
model that wanted to repeat `Boyzone` into a longer, wrong `Boyzone 's`. After
`max_repeats` repeats, repeats are forbidden again: a model looping on one name
of a list is pushed on to the others, and as every new mention differs from
the ones before, the list ends.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

END = -1  # trie key holding the values that end at a node

START, OPEN, IN, AFTER, COMMA, DONE = range(6)
# a clitic after an apostrophe stays with it (`'s`, `'Brien`), as spaCy's tokenizer keeps it:
# `s` alone is never a mention, `Beatles` and `O'Brien` are
_WORD = re.compile(r"'\w+|\w+|[^\w\s]")
# part of cache keys: answers change when the grammar does (6: a few repeats allowed; 7: the pipeline's
# token boundaries when the query has them)
GRAMMAR_VERSION = 7


def _insert(root: dict, key: bytes, value) -> None:
    node = root
    for b in key:
        node = node.setdefault(b, {})
    node.setdefault(END, []).append(value)


@dataclass(frozen=True)
class State:
    mode: int
    node: Optional[dict] = None  # position in the candidate trie while in a string
    content: bytes = b""
    emitted: FrozenSet[bytes] = frozenset()
    spaces: int = 0
    repeats: int = 0  # mentions given again

    def __hash__(self):  # dict nodes are not hashable; states are compared by content
        return hash((self.mode, self.content, self.emitted, self.spaces, self.repeats))


class AnswerGrammar:
    """The answers allowed for one passage."""

    def __init__(self, passage: str, max_words: int = 12, max_repeats: int = 3,
                 words: Sequence[Tuple[int, int]] = ()):
        self.max_repeats = max_repeats
        self.folded = passage.casefold()
        self.root: dict = {}
        if words:  # the pipeline's tokens, so that every mention aligns; spaces are no word
            words = [(s, e) for s, e in words if passage[s:e].strip()]
        else:
            words = [(m.start(), m.end()) for m in _WORD.finditer(passage)]
        seen = set()
        for i, (start, _) in enumerate(words):
            for j in range(i, min(i + max_words, len(words))):
                text = passage[start : words[j][1]]
                if not (text[0].isalnum() and (text[-1].isalnum() or text[-1] in ".)'")):
                    continue  # punctuation is never a whole mention, nor its first or last token
                if '"' in text or "\\" in text or any(ord(c) < 32 for c in text) or text in seen:
                    continue
                seen.add(text)
                _insert(self.root, text.encode("utf8"), text)

    def step(self, s: State, b: int) -> Optional[State]:
        if s.mode == START:
            if b == 0x20 and s.spaces == 0:
                return State(START, spaces=1)
            return State(OPEN) if b == 0x5B else None  # [
        if s.mode == OPEN:
            if b == 0x5D:  # ]
                return State(DONE)
            return State(IN, self.root) if b == 0x22 else None
        if s.mode == IN:
            if b == 0x22:  # closing quote: a whole candidate
                if s.node is None or END not in s.node or not s.content:
                    return None
                if s.content in s.emitted:
                    if s.repeats >= self.max_repeats:
                        return None
                    return State(AFTER, emitted=s.emitted, repeats=s.repeats + 1)
                return State(AFTER, emitted=s.emitted | {s.content}, repeats=s.repeats)
            child = s.node.get(b) if s.node is not None else None
            # the hot path of the vocabulary walk: a plain constructor, not dataclasses.replace
            return State(IN, child, s.content + bytes([b]), s.emitted, 0, s.repeats) if child is not None else None
        if s.mode == AFTER:
            if b == 0x2C:  # ,
                return State(COMMA, emitted=s.emitted, repeats=s.repeats)
            return State(DONE, emitted=s.emitted, repeats=s.repeats) if b == 0x5D else None
        if s.mode == COMMA:
            if b == 0x20 and s.spaces == 0:
                return State(COMMA, emitted=s.emitted, spaces=1, repeats=s.repeats)
            return State(IN, self.root, b"", s.emitted, repeats=s.repeats) if b == 0x22 else None
        return None  # DONE accepts nothing but the end of sequence

    def run(self, data: bytes) -> Optional[State]:
        s = State(START)
        for b in data:
            nxt = self.step(s, b)
            if nxt is None:
                return None
            s = nxt
        return s


class Vocabulary:
    """Token bytes and a byte trie over the vocabulary (built once per tokenizer)."""

    def __init__(self, tokenizer) -> None:
        self.eos_id = tokenizer.eos_token_id
        special = set(tokenizer.all_special_ids)
        self.bytes: List[bytes] = [b""] * len(tokenizer)
        decoder = _byte_decoder(tokenizer)
        self.root: dict = {}
        for token, i in tokenizer.get_vocab().items():
            if i in special or i >= len(self.bytes):
                continue
            data = _token_bytes(tokenizer, token, i, decoder)
            if data:
                self.bytes[i] = data
                _insert(self.root, data, i)

    def allowed(self, grammar: AnswerGrammar, state: State) -> List[int]:
        if state.mode == DONE:
            return [self.eos_id]
        out: List[int] = []
        stack = [(self.root, state)]
        while stack:
            node, s = stack.pop()
            for b, child in node.items():
                if b == END:
                    continue
                nxt = grammar.step(s, b)
                if nxt is None:
                    continue
                out.extend(child.get(END, ()))
                stack.append((child, nxt))
        return out


def _byte_decoder(tokenizer) -> Optional[Dict[str, int]]:
    """GPT-2 style byte-level vocabularies spell bytes with printable stand-ins."""
    try:
        from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode
    except ImportError:  # pragma: no cover
        return None
    table = {v: k for k, v in bytes_to_unicode().items()}
    sample = [t for t in list(tokenizer.get_vocab())[:2000]]
    return table if any("Ġ" in t for t in sample) else None


def _token_bytes(tokenizer, token: str, i: int, decoder: Optional[Dict[str, int]]) -> bytes:
    if decoder is not None and all(c in decoder for c in token):
        return bytes(decoder[c] for c in token)
    if token.startswith("<0x") and token.endswith(">") and len(token) == 6:  # sentencepiece byte fallback
        return bytes([int(token[3:5], 16)])
    text = token.replace("▁", " ")
    return b"" if "\ufffd" in text else text.encode("utf8")


class JsonListConstraint:
    """Masks, per row, every token that would leave that row's AnswerGrammar."""

    def __init__(self, vocab: Vocabulary, grammars: Sequence[AnswerGrammar]):
        self.vocab = vocab
        self.grammars = grammars
        self.mention: Dict[int, bytes] = {}  # row -> the open mention's text so far, as of `options`

    def options(self, generated: Sequence[Sequence[int]], rows: Sequence[int]) -> List[Tuple[List[int], bool]]:
        """Per row: the token ids its grammar allows next (end of sequence when nothing else fits),
        and whether the row is inside a mention (where the grammar can overrule the model)."""
        out = []
        for r, tokens in zip(rows, generated):
            state = self.grammars[r].run(b"".join(self.vocab.bytes[t] for t in tokens))
            ids = (self.vocab.allowed(self.grammars[r], state) if state else []) or [self.vocab.eos_id]
            inside = state is not None and state.mode == IN
            self.mention[r] = state.content if state is not None and inside else b""
            out.append((ids, inside))
        return out

    def allowed(self, generated: Sequence[Sequence[int]], rows: Sequence[int]) -> List[List[int]]:
        return [ids for ids, _ in self.options(generated, rows)]

    def overrules(self, row: int, free_token: int) -> bool:
        """Whether the model's own token (inside a mention) heads for text that is not in the passage:
        the mention so far plus that token, case aside, is no passage text.

        Not when it only differs in case (`bill Murray`) or closes the mention
        early (`thriller` for `thrillers`): alignment matches those anyway.
        """
        piece = self.vocab.bytes[free_token].decode("utf8", "ignore")
        if not piece.strip() or piece.lstrip().startswith('"'):
            return False
        text = (self.mention.get(row, b"").decode("utf8", "ignore") + piece).strip().casefold()
        return text not in self.grammars[row].folded

    def __call__(self, generated: Sequence[Sequence[int]], rows: Sequence[int], scores):
        import torch

        mask = torch.full_like(scores, float("-inf"))
        for k, ids in enumerate(self.allowed(generated, rows)):
            mask[k, ids] = 0.0
        return scores + mask
