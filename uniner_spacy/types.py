"""Plain data classes that pass between the pipeline stages, and the one `Labels` type.

The data flow is chunk → ask → parse → align → stages → resolve → write spans;
each step takes and returns these, so each can be tested on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

# what users give: a list of type names, or {type name: description or None}
Labels = Union[Sequence[str], Mapping[str, Optional[str]]]


def label_key(label: str) -> str:
    """The form in which two type names are the same type: case, `_` and spacing do not count.

    `Medical_Condition`, `medical condition` and `medical  condition` share one key.
    """
    return " ".join(label.lower().replace("_", " ").split())


@dataclass(frozen=True)
class Passage:
    """A piece of a document small enough for one model prompt."""

    text: str
    start: int  # character offset of `text` in the document
    n_tokens: int = 0  # length in the model's tokenizer


@dataclass(frozen=True)
class Query:
    """One (passage, type) question; `label` is the user's label it answers for."""

    passage: str
    entity_type: str
    label: str = ""
    # (start, end) of the passage's tokens in the pipeline's tokenizer, where a mention may begin and
    # end: a grammar that cuts words its own way lets the model answer `PLUS` out of the token `-PLUS`,
    # which alignment cannot place. Empty: the grammar splits words itself.
    words: Tuple[Tuple[int, int], ...] = ()
    # the label set shown before the passage (the label-set prompt, `prompts.LABEL_SET`); empty: none
    label_set: Tuple[str, ...] = ()


@dataclass
class Generation:
    """A backend's raw answer, with per-token log-probabilities when known."""

    text: str
    error: Optional[str] = None  # set when the backend failed for this query
    token_logprobs: Optional[List[Tuple[str, float]]] = None
    # mentions a grammar pushed the model into (its own choice led out of the passage)
    forced: Tuple[str, ...] = ()
    # "stop": the answer ended by itself; "length": cut at the token limit (then repaired and counted)
    finish_reason: str = "stop"


@dataclass
class ParsedAnswer:
    mentions: List[str]
    ok: bool  # False when the answer was not a (possibly truncated) JSON list
    repaired: bool = False  # True when the answer was cut off (unclosed, or past MAX_MENTIONS)
    scores: Optional[List[float]] = None


@dataclass(frozen=True)
class Candidate:
    """A mention aligned to character offsets of the document."""

    start: int
    end: int
    label: str
    score: float = 1.0
    source: str = ""  # the question that found it
    match: str = "exact"  # exact | case | fuzzy
    raw_score: Optional[float] = None  # before calibration


@dataclass
class Stats:
    """Per-doc counts, so failures are visible rather than silently dropped.

    A doc is `complete` only when every question got an answer and every stage ran: a batch run
    never finalises an incomplete doc as "no entities", it retries it.
    """

    queries: int = 0
    passages: int = 0
    parse_failures: int = 0
    backend_errors: int = 0
    unaligned: List[Tuple[str, str]] = field(default_factory=list)  # (label, mention)
    forced: int = 0  # mentions where constrained decoding overruled the model (dropped with drop_forced)
    truncated: int = 0  # answers cut at the token limit (what was cut off is lost)
    errors: List[str] = field(default_factory=list)  # each distinct failure: the backend's, offsets, stages
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.backend_errors == 0 and not self.errors

    def to_dict(self) -> Dict[str, object]:
        return {
            "queries": self.queries,
            "passages": self.passages,
            "parse_failures": self.parse_failures,
            "backend_errors": self.backend_errors,
            "unaligned": [list(u) for u in self.unaligned],
            "forced": self.forced,
            "truncated": self.truncated,
            "errors": list(self.errors),
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Stats":
        """The inverse of `to_dict`, tolerant of rows written before a field existed."""
        kwargs = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        kwargs["unaligned"] = [tuple(u) for u in kwargs.get("unaligned", [])]
        return cls(**kwargs)


@dataclass(frozen=True)
class Entity:
    """A gold or predicted entity in a loaded example: [start, end) character offsets."""

    start: int
    end: int
    label: str


@dataclass
class AnnotatedText:
    """One annotated text from any data set, as the loaders return it.

    `labels` is the full label set the text was annotated for (natural-language
    names), so that absent labels are true negatives.
    """

    text: str
    entities: List[Entity]
    labels: List[str]
    source: str = ""


@runtime_checkable
class Serializable(Protocol):
    """A part with data of its own (a stage's rules, a backend's adapter) that the `uniner` pipe
    writes into a saved pipeline's folder and reads back, spaCy's `to_disk` / `from_disk`."""

    def to_disk(self, path: Path) -> None: ...

    def from_disk(self, path: Path) -> "Serializable": ...
