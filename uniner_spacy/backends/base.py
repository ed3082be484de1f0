"""What all backends share: the `Backend` interface, rendering queries and measuring passages."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

from ..questions.prompts import SYSTEM_PARAGRAPH, SYSTEM_TEXT, Template
from ..types import Generation, Query


@runtime_checkable
class Backend(Protocol):
    """Who answers. Everything the component and the answer cache use is declared here.

    - `model_id`: identifies weights, prompt and decoding settings (part of cache keys).
    - `token_offsets(text)`: character offsets of the model's tokens, to cut passages by its budget.
    - `__call__(queries, mark_forced=...)`: one answer per query, in order; a failed query comes
      back with `Generation.error` set. `mark_forced` asks a constrained backend to mark mentions
      its grammar forced (`Generation.forced`); backends that never force ignore it.
    - `capacity`: how many queries one call takes before it stops getting faster per query (a
      model's batch rows, a server client's concurrency), or None; the pipe gathers documents
      until a call has that many, whatever batch size `nlp.pipe` was given.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def capacity(self) -> Optional[int]: ...

    def token_offsets(self, text: str) -> List[Tuple[int, int]]: ...

    def __call__(self, queries: Sequence[Query], *, mark_forced: bool = False) -> List[Generation]: ...


_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def approx_token_offsets(text: str) -> List[Tuple[int, int]]:
    """Word and punctuation offsets: a stand-in when no model tokenizer is at hand.

    Sub-word tokenizers cut words further, so budgets measured with this are
    optimistic; configure a real tokenizer for remote models where it matters.
    """
    return [(m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


@dataclass
class Prompter:
    """Template options shared by all backends (see prompts.Template)."""

    system: str = "text"  # text | paragraph | any literal system text
    dataset: Optional[str] = None
    layout: str = "uniner"  # prompts.LAYOUTS: the one the model was trained on

    def template(self, eos: str) -> Template:
        system = {"text": SYSTEM_TEXT, "paragraph": SYSTEM_PARAGRAPH}.get(self.system, self.system)
        return Template(eos=eos, system=system, dataset=self.dataset, layout=self.layout)

    def describe(self) -> Dict[str, object]:
        """The template's part of a model id; "uniner" adds nothing, so earlier cache keys stay valid."""
        out: Dict[str, object] = {"system": self.system, "dataset": self.dataset}
        if self.layout != "uniner":
            out["template"] = Template(layout=self.layout).version
        return out


Spans = Sequence[Tuple[int, int]]  # character ranges of document text inside a prompt


class PromptEncoder:
    """Token ids of prompts in which document text cannot turn into control tokens.

    Tokenizers read a special-token string anywhere in a string as that token, so a passage that
    says `<|im_end|>` would close the user's turn. A prompt whose document text (`texts`) holds such
    a string is cut at the control tokens outside that text (the template's own) and the pieces
    between are tokenized with special tokens split, as the tokenizer treats text around control
    tokens anyway; every other prompt is tokenized whole, so ordinary prompts keep their exact ids.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        specials = {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
                    if getattr(t, "special", False)} | set(tokenizer.all_special_tokens)
        # longest first: `<|im_end|>` before a special token that is a prefix of it
        self.specials = re.compile("|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True) if t))

    def unsafe(self, text: str, texts: Spans) -> bool:
        """Whether a special-token string overlaps document text in `text`."""
        return any(self._in(m, texts) for m in self._matches(text))

    def _matches(self, text: str) -> List["re.Match[str]"]:
        return list(self.specials.finditer(text)) if self.specials.pattern else []

    @staticmethod
    def _in(m: "re.Match[str]", texts: Spans) -> bool:
        return any(m.start() < e and m.end() > s for s, e in texts)

    def __call__(self, text: str, texts: Spans = (), *, add_special_tokens: bool = True) -> List[int]:
        tok = self.tokenizer
        matches = self._matches(text) if texts else []
        if not any(self._in(m, texts) for m in matches):
            return tok(text, add_special_tokens=add_special_tokens).input_ids
        pieces: List[str] = []
        start = 0
        controls = [m for m in matches if not self._in(m, texts)]
        for m in controls:
            pieces.append(text[start : m.start()])
            start = m.end()
        pieces.append(text[start:])
        ids: List[int] = []
        for k, piece in enumerate(pieces):
            # BOS and the like open the prompt only
            ids += tok(piece, add_special_tokens=add_special_tokens and k == 0, split_special_tokens=True).input_ids
            if k < len(controls):
                ids.append(tok.convert_tokens_to_ids(controls[k].group()))
        return ids


def clip(texts: Spans, start: int, end: int) -> List[Tuple[int, int]]:
    """The ranges of `texts` within text[start:end], relative to `start`."""
    return [(max(s, start) - start, min(e, end) - start) for s, e in texts if s < end and e > start]


def describe(settings: Dict[str, object]) -> str:
    """A stable text of the decoding settings, for cache keys and model cards."""
    return ";".join(f"{k}={settings[k]}" for k in sorted(settings))


def common_head(texts: List[str]) -> str:
    """The longest shared start of `texts` that ends before a word (` word`).

    With prefix sharing the question's common opening ("USER: What describes")
    joins the cached passage prefix, so only the type-specific rest is run per
    question. Cutting just before a space keeps the tokens the same under
    GPT-2-style pre-tokenisation (the space belongs to the next word); callers
    still check that on the real tokenizer.
    """
    if not texts:
        return ""
    head = os.path.commonprefix(texts)
    shortest = min(len(t) for t in texts)

    def word_starts(i: int) -> bool:
        return all(t[i] == " " and t[i - 1] != " " and not t[i + 1].isspace() for t in texts)

    cut = min(len(head) - 1, shortest - 2)
    while cut > 0 and not word_starts(cut):
        cut -= 1
    return head[:cut] if cut > 0 else ""
