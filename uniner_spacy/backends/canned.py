"""`uniner.Canned.v1`: a test double that answers from a table, for orchestration tests and demos.

It shows what the pipe does with answers (batching, stages, errors, serialisation) in
milliseconds, where a real model would take seconds; tests about model behaviour use the
real models. Each query is answered with the listed mentions of its type that occur in its
passage, as a JSON list; `raw` gives an answer text verbatim (a broken one, say), a type
in `errors` fails, and mentions in `forced` are marked as a grammar would mark them when
the pipe asks for marks (`mark_forced`), so `drop_forced` can be tested without a grammar.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError
from ..io import text_sha256
from ..registry import registry
from ..types import Generation, Query
from .base import approx_token_offsets


class CannedBackend:
    def __init__(self, answers: Optional[Dict[str, List[str]]] = None, *,
                 raw: Optional[Dict[str, str]] = None, errors: Sequence[str] = (), score: float = -0.05,
                 forced: Sequence[str] = ()):
        if score > 0:
            raise ConfigError(f"score is a log-probability (≤ 0) given to every answer token, got {score}")
        self.answers = {k: list(v) for k, v in (answers or {}).items()}
        self.raw = dict(raw or {})
        self.errors = frozenset(errors)
        self.score = score  # the log-probability given to every answer token
        self.forced = frozenset(forced)
        self.asked: List[Query] = []  # every query, in order, for tests to inspect
        self.calls: List[Tuple[int, bool]] = []  # (queries, mark_forced) of each call

    @property
    def model_id(self) -> str:
        """Follows everything that shapes an answer, as a real model id follows weights and settings."""
        table = json.dumps([self.answers, self.raw, sorted(self.errors), self.score, sorted(self.forced)],
                           sort_keys=True)
        return "canned:" + text_sha256(table)[:16]

    capacity: Optional[int] = None  # a table answers any batch at once

    def token_offsets(self, text: str) -> List[Tuple[int, int]]:
        return approx_token_offsets(text)

    def __call__(self, queries: Sequence[Query], *, mark_forced: bool = False) -> List[Generation]:
        self.asked.extend(queries)
        self.calls.append((len(queries), mark_forced))
        return [self.answer(q, mark_forced=mark_forced) for q in queries]

    def answer(self, query: Query, *, mark_forced: bool = False) -> Generation:
        if query.entity_type in self.errors:
            return Generation(text="", error=f"canned failure for {query.entity_type!r}")
        if query.entity_type in self.raw:
            return Generation(text=self.raw[query.entity_type])
        found = [m for m in self.answers.get(query.entity_type, []) if m in query.passage]
        text = json.dumps(found, ensure_ascii=False)
        marks = tuple(m for m in found if m in self.forced) if mark_forced else ()
        return Generation(text=text, token_logprobs=[(text, self.score)], forced=marks)


@registry.misc("uniner.Canned.v1")
def make_canned_backend(answers: Optional[Dict[str, List[str]]] = None, raw: Optional[Dict[str, str]] = None,
                        errors: Sequence[str] = (), score: float = -0.05,
                        forced: Sequence[str] = ()) -> CannedBackend:
    return CannedBackend(answers, raw=raw, errors=errors, score=score, forced=forced)
