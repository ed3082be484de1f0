"""Drafts for speculative decoding: an answer copies its passage.

A mention is passage text, so once a mention has begun its continuation can be
read off the passage: the text after the mention so far, tokenized, is the
draft (`Warw` → `icks`, `hire`; `C` → `.`, ` Lewis`). Outside a mention the
list's own frame repeats (`",` → ` "`), so the draft is what followed the last
token the previous time the row produced it. `greedy_decode` verifies a draft
in one forward and keeps the longest prefix greedy decoding would have chosen,
so the answers are the same; what a draft saves is decode steps, which on the
CPU cost about the same for a few rows whether one token or five are run.

Drafts come from the passage rather than from n-grams of prompt and answer
(prompt lookup), because a mention's first token is spelt differently in the
answer (`C`) than in the passage (` C`), so prompt lookup misses where
passage drafts hit. Tokens the grammar allows only one way (jump-forward) are
rare, since the vocabulary offers every prefix of a passage word, so they get
no path of their own. Figures: docs/speed.md; the simulations behind these
choices: benchmarks/NOTES.md.
"""
from __future__ import annotations

from typing import List, Sequence


class PassageDrafter:
    """Per batch row: up to `tokens` draft tokens, from the row's passage or its own answer so far."""

    def __init__(self, tokenizer, passages: Sequence[str], tokens: int = 4, chars: int = 48):
        self.tokenizer = tokenizer
        self.passages = [p.encode("utf8") for p in passages]
        self.tokens = tokens
        self.chars = chars  # enough passage text for `tokens` tokens

    def __call__(self, row: int, mention: bytes, generated: Sequence[int]) -> List[int]:
        """`mention`: the open mention's text so far (empty outside one, or just after its quote)."""
        if mention:
            at = self.passages[row].find(mention)
            if at < 0:
                return []
            rest = self.passages[row][at + len(mention) : at + len(mention) + self.chars]
            return self.tokenizer(rest.decode("utf8", "ignore"), add_special_tokens=False).input_ids[: self.tokens]
        if not generated:
            return []
        last = generated[-1]
        for i in range(len(generated) - 2, -1, -1):
            if generated[i] == last:
                return list(generated[i + 1 : i + 1 + self.tokens])
        return []
