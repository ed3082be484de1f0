"""The exact UniNER templates: inference, training conversations, teacher.

The strings are facts the released models were trained on (UNINER.md); change
them only through the options here, never by editing a copy elsewhere.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import ConfigError
from ..trust import read_text

SYSTEM_TEXT = "A virtual assistant answers questions from a user based on the provided text."
SYSTEM_PARAGRAPH = (
    "A virtual assistant answers questions from a user based on the provided paragraph."
)
ACK = "I've read this text."
QUESTION = "What describes {entity_type} in the text?"
_QUESTION = re.compile(re.escape(QUESTION).replace(re.escape("{entity_type}"), "(.+)"), re.DOTALL)
# The type-last layout (ours, not UniNER's): the question's fixed words come first and the assistant's
# turn opens with the type, so a prompt ends at the type. With prefix sharing each (passage, type) then
# runs only ` person:` (2 tokens) instead of ` person in the text? ASSISTANT:` (9). For students trained
# on it (`training.train --layout type-last`); their adapter folder says so (`LAYOUT_FILE`).
QUESTION_TYPE_LAST = "What describes this type in the text?"
LAYOUTS = ("uniner", "type-last")
LAYOUT_FILE = "template.json"  # in an adapter folder: {"layout": ...}; absent means "uniner"
# The label-set prompt (ours, not UniNER's): every type the passage will be asked, before the passage, so
# that a student trained on it can answer each question knowing the others (`writer` beside `person`).
LABEL_SET = "Entity types: {types}. "
LLAMA_EOS = "</s>"
USER_CUE = "USER:"
ASSISTANT_CUE = "ASSISTANT:"  # a prompt ends here; the model writes the answer

TEACHER_SYSTEM = "You are a helpful information extraction system."
TEACHER_TYPE = (
    "Given a passage, your task is to extract all entities and identify their entity types. "
    'The output should be in a list of tuples of the following format: [("entity 1", '
    '"type of entity 1"), ...]. Passage: {input_passage}'
)
TEACHER_DEFINITION = (
    "Given a passage, your task is to extract all entities and identify their entity types. "
    'The output should be in a list of tuples of the following format: [("entity 1", '
    '"definition of entity type in a short sentence"), ...]. Passage: {input_passage}'
)

# Bumped whenever the rendered text changes; part of every cache key.
TEMPLATE_VERSION = "uniner-1"
TYPE_LAST_VERSION = "type-last-1"


@dataclass(frozen=True)
class Template:
    """How a (passage, type) query becomes a prompt.

    `eos` is the model's own end-of-sequence token, which stands where the
    LLaMA `</s>` stands in the original template. `layout` is "uniner" (the
    released models' format) or "type-last" (`QUESTION_TYPE_LAST`).
    """

    eos: str = LLAMA_EOS
    system: str = SYSTEM_TEXT
    dataset: Optional[str] = None  # dataset-specific template: `Dataset: {name} Text: ...`
    layout: str = "uniner"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")

    @property
    def version(self) -> str:
        """The rendered text's version (cache keys)."""
        return TYPE_LAST_VERSION if self.layout == "type-last" else TEMPLATE_VERSION

    def first_user_turn(self, passage: str, types: Sequence[str] = ()) -> str:
        """`types`: the label set shown before the passage (`LABEL_SET`); empty, UniNER's own turn."""
        shown = LABEL_SET.format(types=", ".join(types)) if types else ""
        if self.dataset:
            return f"Dataset: {self.dataset} {shown}Text: {passage}"
        return f"{shown}Text: {passage}"

    def chat_turns(self, passage: str, entity_type: str, types: Sequence[str] = ()) -> List[Dict[str, str]]:
        """The four UniNER turns as chat messages (system, passage, ACK, question)."""
        if self.layout == "type-last":
            raise ConfigError("a type-last prompt ends inside the assistant's turn, which chat messages cannot "
                             "say: ask such a student over the completions endpoint")
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.first_user_turn(passage, types)},
            {"role": "assistant", "content": ACK},
            {"role": "user", "content": question(entity_type)},
        ]

    def _user(self, content: str) -> str:
        return f"{USER_CUE} {content} "

    def _assistant(self, content: str) -> str:
        """A finished assistant turn; it ends in the model's EOS."""
        return f"{ASSISTANT_CUE} {content}{self.eos}"

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """Chat messages in the Vicuna-style format UniNER models were trained on.

        System messages are joined in front; the text ends with the cue for the
        assistant's next turn, so `chat_turns` renders exactly as `render` does.
        """
        return self.render_chat_texts(messages)[0]

    def render_chat_texts(self, messages: Sequence[Mapping[str, str]]) -> Tuple[str, List[Tuple[int, int]]]:
        """`render_chat`, and where the messages' contents lie in it: that is text, never control tokens.

        Chat is UniNER's conversation whatever the layout: in the type-last
        layout a user turn that asks UniNER's question ("What describes X in
        the text?") is rendered as this layout asks it (`question_turn`), so a
        chat client gets the answer its student was trained to give.
        """
        pieces: List[Tuple[str, bool]] = []  # (piece, a message's content)
        systems = [m["content"] for m in messages if m["role"] == "system"]
        if " ".join(systems):
            for k, system in enumerate(systems):
                pieces += [(" " if k else "", False), (system, True)]
            pieces.append((" ", False))
        cued = False  # the assistant's turn is open already (a type-last question)
        for m in messages:
            asked = m["role"] == "user" and self.layout == "type-last" and _QUESTION.fullmatch(m["content"])
            if asked:
                pieces += [(self._type_cue(), False), (asked.group(1), True), (":", False)]
                cued = True
            elif m["role"] == "user":
                pieces += [(f"{USER_CUE} ", False), (m["content"], True), (" ", False)]
                cued = False
            elif m["role"] == "assistant":
                pieces += [(" " if cued else f"{ASSISTANT_CUE} ", False), (m["content"], True), (self.eos, False)]
                cued = False
        if not cued:
            pieces.append((ASSISTANT_CUE, False))
        text, spans = "", []
        for piece, is_content in pieces:
            if is_content:
                spans.append((len(text), len(text) + len(piece)))
            text += piece
        return text, spans

    def prefix(self, passage: str, types: Sequence[str] = ()) -> str:
        """Everything before the first question: shared by all types of a passage."""
        return f"{self.system} " + self._user(self.first_user_turn(passage, types)) + self._assistant(ACK)

    def passage_span(self, passage: str, types: Sequence[str] = ()) -> Tuple[int, int]:
        """Where `passage` lies in `prefix(passage)` (and `render`): document text, so a special-token
        string in it must be tokenized as text, not as the template's control tokens."""
        start = len(f"{self.system} {USER_CUE} ") + len(self.first_user_turn("", types))
        return start, start + len(passage)

    def question_turn(self, entity_type: str) -> str:
        """The prompt after `prefix`; it ends where the answer begins."""
        if self.layout == "type-last":
            return self._type_cue() + f"{entity_type}:"
        return self._user(question(entity_type)) + ASSISTANT_CUE

    def _type_cue(self) -> str:
        """A type-last question up to its type, which opens the assistant's turn."""
        return self._user(QUESTION_TYPE_LAST) + f"{ASSISTANT_CUE} "

    def render(self, passage: str, entity_type: str, types: Sequence[str] = ()) -> str:
        """The inference prompt; the model continues with ` [..]` and EOS."""
        return self.prefix(passage, types) + self.question_turn(entity_type)

    def render_conversation(
        self, passage: str, turns: Sequence[Tuple[str, str]], types: Sequence[str] = ()
    ) -> Tuple[str, list]:
        """A multi-turn training conversation.

        Returns the full text and the (start, end) character ranges that carry
        loss: each assistant answer plus its EOS (UNINER.md: loss on assistant
        turns only).
        """
        text = self.prefix(passage, types)
        targets = []
        for entity_type, answer in turns:
            text += self.question_turn(entity_type)
            start = len(text)  # the loss starts where the prompt ends
            text += f" {answer}{self.eos}"
            targets.append((start, len(text)))
        return text, targets


def adapter_layout(folder: Union[str, Path, None]) -> str:
    """The layout an adapter was trained on: its `LAYOUT_FILE`, else UniNER's own."""
    path = Path(folder) / LAYOUT_FILE if folder else None
    if path is None or not path.exists():
        return "uniner"
    layout = json.loads(read_text(path, "adapter layout")).get("layout", "uniner")  # regular, capped
    if layout not in LAYOUTS:
        raise ConfigError(f"{path} names layout {layout!r}; this version knows {LAYOUTS}")
    return layout


def write_layout(folder: Union[str, Path], layout: str) -> None:
    """Record an adapter's layout beside it (nothing for "uniner", which is what no file means)."""
    path = Path(folder) / LAYOUT_FILE
    if layout == "uniner":
        path.unlink(missing_ok=True)
    else:
        path.write_text(json.dumps({"layout": layout}) + "\n", encoding="utf-8")


def type_phrase(entity_type: str, definition: Optional[str] = None, mode: str = "type") -> str:
    """What the question names: the type, its definition, or both."""
    if definition and mode == "definition":
        return definition.rstrip(".")
    if definition and mode == "both":
        return f"{entity_type} ({definition.rstrip('.')})"
    return entity_type


def question(entity_type: str, definition: Optional[str] = None, mode: str = "type") -> str:
    """The question text; `definition` modes ask with the label's description."""
    return QUESTION.format(entity_type=type_phrase(entity_type, definition, mode))


def teacher_messages(passage: str, definition: bool = False) -> list:
    """The teacher prompt as chat messages (UNINER.md, 'Teacher data construction')."""
    template = TEACHER_DEFINITION if definition else TEACHER_TYPE
    return [
        {"role": "system", "content": TEACHER_SYSTEM},
        {"role": "user", "content": template.format(input_passage=passage)},
    ]
