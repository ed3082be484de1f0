"""The `uniner` pipe: chunk → ask → parse → align → stages → resolve → write spans.

The class keeps the behaviour and the factory only wires configuration, as in
spaCy's own SpanRuler. All (chunk, label) queries of an `nlp.pipe` batch go to
the backend together, so batching across documents is the backend's job.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from spacy.util import minibatch

from ..backends.base import Backend
from ..errors import ConfigError
from ..registry import registry
from ..types import Candidate, Generation, Labels, Passage, Query, Serializable, Stats, label_key
from .align import align_mention, token_bounds_in
from .calibration import CALIBRATION_FILE, Calibrator
from .chunking import chunk_text, doc_units
from .parsing import mention_scores, parse_answer
from .prompts import type_phrase
from .resolve import POLICIES, consolidate, resolve

logger = logging.getLogger(__name__)

# Extra entity types to ask for each label (paraphrase matching): {label: [type, ...]}
Paraphraser = Callable[[Dict[str, Optional[str]]], Dict[str, List[str]]]
# A post-processing stage over one doc's candidates: rules, conflicts, precision check.
Stage = Callable[[Doc, List[Candidate]], List[Candidate]]

DEFAULT_BACKEND = {"@misc": "uniner.HF.v1", "model": "embedded"}
# what `stages` unset (null) means; measured in benchmarks/ablation.py: the largest single gain
DEFAULT_STAGES = {"conflicts": {"@misc": "uniner.Conflicts.v1"}}


def register_extensions() -> None:
    """Extra data lives in extensions, never in new Doc attributes."""
    if not Doc.has_extension("uniner_stats"):
        Doc.set_extension("uniner_stats", default=None)
    for name in ("uniner_score", "uniner_raw_score", "uniner_source", "uniner_match"):
        if not Span.has_extension(name):
            Span.set_extension(name, default=None)


@Language.factory(
    "uniner",
    assigns=["doc.ents", "doc.spans", "doc._.uniner_stats"],
    default_config={
        "labels": [],
        "backend": DEFAULT_BACKEND,
        "spans_key": "uniner",
        "max_passage_tokens": 256,
        "overlap_tokens": 32,
        "fuzzy_threshold": 90.0,
        "threshold": 0.0,
        "overlap_policy": "score",
        "write_ents": True,
        "keep_existing_ents": False,
        "question_mode": "type",
        "on_error": "record",
        "drop_forced": False,
        "paraphrases": None,
        # null: DEFAULT_STAGES. A dict default would be merged with the user's by confection, so
        # `{}` could never turn the default stage off: the user's dict is the whole list of stages
        "stages": None,
        "calibration": {"@misc": "uniner.Calibration.v1", "path": "embedded"},
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_uniner(
    nlp: Language,
    name: str,
    labels: Labels,
    backend: Backend,
    spans_key: str,
    max_passage_tokens: int,
    overlap_tokens: int,
    fuzzy_threshold: float,
    threshold: float,
    overlap_policy: str,
    write_ents: bool,
    keep_existing_ents: bool,
    question_mode: str,
    on_error: str,
    drop_forced: bool,
    paraphrases: Optional[Paraphraser],
    stages: Optional[Dict[str, Any]],  # Stage callables; `Any`: confection validates before it builds
    calibration: Optional[Callable[[float], float]],
    scorer: Optional[Callable],
) -> "UniNER":
    if stages is None:
        stages = registry.resolve({"stages": DEFAULT_STAGES})["stages"]
    return UniNER(
        nlp.vocab, backend, name=name, labels=labels, spans_key=spans_key,
        max_passage_tokens=max_passage_tokens, overlap_tokens=overlap_tokens,
        fuzzy_threshold=fuzzy_threshold, threshold=threshold, overlap_policy=overlap_policy,
        write_ents=write_ents, keep_existing_ents=keep_existing_ents,
        question_mode=question_mode, on_error=on_error, drop_forced=drop_forced, paraphrases=paraphrases,
        stages=stages, calibration=calibration, scorer=scorer,
    )


def validate_labels(labels: Labels) -> Dict[str, Optional[str]]:
    """{label: description or None}; empty or duplicate labels are a config error."""
    if isinstance(labels, str):
        raise ConfigError(f"labels must be a list or a {{label: description}} map, not the string {labels!r}")
    items = list(labels.items()) if isinstance(labels, dict) else [(l, None) for l in labels]
    if not items:
        raise ConfigError(
            "The 'uniner' component needs at least one label, e.g. "
            "config={'labels': ['person', 'organization', 'location']}"
        )
    out: Dict[str, Optional[str]] = {}
    seen: Dict[str, str] = {}
    for label, desc in items:
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"Labels must be non-empty strings, got {label!r}")
        key = label_key(label)
        if key in seen:
            raise ConfigError(f"Duplicate label {label!r} (same as {seen[key]!r}); list each label once")
        seen[key] = label
        out[label] = desc
    return out


class UniNER:
    def __init__(
        self,
        vocab,
        backend: Backend,
        *,
        name: str = "uniner",
        labels: Labels = (),
        spans_key: str = "uniner",
        max_passage_tokens: int = 256,
        overlap_tokens: int = 32,
        fuzzy_threshold: float = 90.0,
        threshold: float = 0.0,
        overlap_policy: str = "score",
        write_ents: bool = True,
        keep_existing_ents: bool = False,
        question_mode: str = "type",
        on_error: str = "record",
        drop_forced: bool = False,
        paraphrases: Optional[Paraphraser] = None,
        stages: Optional[Dict[str, Stage]] = None,
        calibration: Optional[Callable[[float], float]] = None,
        scorer: Optional[Callable] = None,
    ):
        if overlap_policy not in POLICIES:
            raise ConfigError(f"overlap_policy must be one of {POLICIES}, got {overlap_policy!r}")
        if question_mode not in ("type", "definition", "both"):
            raise ConfigError(f"question_mode must be 'type', 'definition' or 'both', got {question_mode!r}")
        if on_error not in ("record", "raise"):
            raise ConfigError(f"on_error must be 'record' or 'raise', got {on_error!r}")
        if not 0 <= overlap_tokens < max_passage_tokens:
            raise ConfigError("overlap_tokens must be ≥ 0 and smaller than max_passage_tokens")
        register_extensions()
        self.vocab = vocab
        self.name = name
        self.backend = backend
        self.label_map = validate_labels(labels)
        self.spans_key = spans_key
        self.max_passage_tokens = max_passage_tokens
        self.overlap_tokens = overlap_tokens
        self.fuzzy_threshold = fuzzy_threshold
        self.threshold = threshold
        self.overlap_policy = overlap_policy
        self.write_ents = write_ents
        self.keep_existing_ents = keep_existing_ents
        self.question_mode = question_mode
        self.on_error = on_error
        # off: forced mentions are often the model's near-misses put right (`Baker Obama` → `Barack Obama`)
        self.drop_forced = drop_forced
        self.paraphrases = paraphrases
        self.stages: Dict[str, Stage] = dict(stages or {})  # exactly these, in key order; None: none
        self.calibration = calibration
        self.scorer = scorer
        self._extra_types: Optional[Dict[str, List[str]]] = None

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.label_map)

    def add_label(self, label: str, description: Optional[str] = None) -> None:
        self.label_map = validate_labels({**self.label_map, label: description})
        self._extra_types = None

    @property
    def extra_types(self) -> Dict[str, List[str]]:
        """Paraphrases asked besides each label, computed once per label set."""
        if self._extra_types is None:
            self._extra_types = self.paraphrases(dict(self.label_map)) if self.paraphrases else {}
        return self._extra_types

    # -- stages ------------------------------------------------------------
    def passages(self, doc: Doc) -> List[Passage]:
        if not doc.text.strip():
            return []
        offsets = self.backend.token_offsets(doc.text)
        return chunk_text(doc.text, offsets, doc_units(doc), self.max_passage_tokens, self.overlap_tokens)

    def queries(self, passage: Passage, words: Tuple[Tuple[int, int], ...] = ()) -> List[Query]:
        """One question per type; `words` (the passage's token offsets) tell a grammar where mentions may
        begin and end."""
        out = []
        for label in self.label_map:
            out.append(Query(passage.text, self.entity_type(label), label, words))
            out.extend(Query(passage.text, t, label, words) for t in self.extra_types.get(label, []))
        return out

    def entity_type(self, label: str) -> str:
        """What the question names: the label, its description, or both."""
        return type_phrase(label, self.label_map.get(label), self.question_mode)

    def ask(self, queries: List[Query]) -> List[Generation]:
        if not queries:
            return []
        try:
            gens = self.backend(queries, mark_forced=self.drop_forced)
            if len(gens) != len(queries):
                raise RuntimeError(f"backend returned {len(gens)} answers for {len(queries)} queries")
            return gens
        except Exception as err:
            if self.on_error == "raise":
                raise
            logger.warning("uniner backend failed for %d queries: %s", len(queries), err)
            return [Generation(text="", error=f"{type(err).__name__}: {err}") for _ in queries]

    def predict(self, docs: Sequence[Doc]) -> List[Tuple[List[Candidate], Stats]]:
        start = time.perf_counter()
        stats = [Stats() for _ in docs]
        owners: List[Tuple[int, Passage]] = []
        queries: List[Query] = []
        bounds = [[(t.idx, t.idx + len(t)) for t in doc] for doc in docs]
        for i, doc in enumerate(docs):
            passages = self.passages(doc)
            stats[i].passages = len(passages)
            for p in passages:
                words = tuple(token_bounds_in(bounds[i], p.start, p.start + len(p.text)))
                for q in self.queries(p, words):
                    owners.append((i, p))
                    queries.append(q)
        gens = self.ask(queries)
        found: List[List[Candidate]] = [[] for _ in docs]
        for (i, passage), query, gen in zip(owners, queries, gens):
            stats[i].queries += 1
            found[i].extend(self.read_answer(passage, query, gen, stats[i]))
        elapsed = time.perf_counter() - start
        total = max(1, len(queries))
        results = []
        for i in range(len(docs)):
            stats[i].seconds = elapsed * stats[i].queries / total
            candidates = consolidate(found[i])
            for stage in self.stages.values():
                candidates = stage(docs[i], candidates)
            kept = [c for c in candidates if c.score >= self.threshold]
            results.append((kept, stats[i]))
        return results

    def read_answer(
        self, passage: Passage, query: Query, gen: Generation, stats: Stats,
    ) -> List[Candidate]:
        """parse → score → align (to the passage's tokens, `query.words`) for one answer; failures go to `stats`."""
        if gen.error is not None:
            stats.backend_errors += 1
            return []
        parsed = parse_answer(gen.text)
        if not parsed.ok:
            stats.parse_failures += 1
            return []
        scores = mention_scores(gen.text, gen.token_logprobs, parsed.mentions)
        out = []
        for k, mention in enumerate(parsed.mentions):
            if mention in gen.forced:
                stats.forced += 1
                if self.drop_forced:
                    continue
            matches = align_mention(mention, passage.text, query.words, self.fuzzy_threshold)
            if not matches:
                stats.unaligned.append((query.label, mention))
            raw = scores[k] if scores is not None else 1.0
            score = self.calibration(raw) if self.calibration is not None else raw
            for m in matches:
                out.append(Candidate(
                    passage.start + m.start, passage.start + m.end, query.label,
                    score=score, source=query.entity_type, match=m.kind, raw_score=raw,
                ))
        return out

    def set_annotations(self, docs: Sequence[Doc], results) -> None:
        for doc, (candidates, stats) in zip(docs, results):
            spans, scores = [], []
            for c in candidates:
                span = doc.char_span(c.start, c.end, label=c.label)
                if span is None:  # cannot happen for token-boundary matches; keep it visible
                    stats.unaligned.append((c.label, doc.text[c.start : c.end]))
                    continue
                span._.uniner_score = c.score
                span._.uniner_raw_score = c.raw_score
                span._.uniner_source = c.source
                span._.uniner_match = c.match
                spans.append(span)
                scores.append(c.score)
            # spaCy keys span extensions by offsets only, so two labels of one span share their
            # `_.uniner_score`; the group's `scores` (spancat's convention) keeps one per span
            doc.spans[self.spans_key] = SpanGroup(doc, name=self.spans_key, attrs={"scores": scores}, spans=spans)
            if self.write_ents:
                existing = list(doc.ents) if self.keep_existing_ents else []
                taken = [(e.start_char, e.end_char) for e in existing]
                chosen = resolve(candidates, self.overlap_policy, taken)
                by_key = {(s.start_char, s.end_char, s.label_): s for s in spans}
                new = []
                for c in chosen:
                    span = by_key.get((c.start, c.end, c.label))
                    if span is None:
                        continue
                    # the offsets' extensions hold the last label written: make them the entity's
                    span._.uniner_score, span._.uniner_raw_score = c.score, c.raw_score
                    span._.uniner_source, span._.uniner_match = c.source, c.match
                    new.append(span)
                doc.ents = sorted(existing + new, key=lambda s: s.start)
            doc._.uniner_stats = stats.to_dict()

    # -- spaCy pipe API ----------------------------------------------------
    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        for docs in minibatch(stream, size=batch_size):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    def initialize(self, get_examples: Optional[Callable[[], Iterable[Example]]] = None, *, nlp=None,
                   labels: Optional[Labels] = None) -> None:
        if labels is not None:
            self.label_map = validate_labels(labels)
            self._extra_types = None

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, object]:
        if self.scorer is None:
            raise ConfigError("This 'uniner' component has no scorer")
        return self.scorer(examples, **kwargs)

    # -- serialisation -----------------------------------------------------
    # The folder holds the component's data, so a saved pipeline can move: labels, the calibration,
    # each stage's data (rules with their gazetteers inlined) and the backend's (a copied adapter, or
    # a note that the shipped one is meant). The config still names the original files; the parts
    # built from it load their files lazily, and from_disk puts the saved data in their place.
    def _cfg(self) -> Dict[str, object]:
        return {"labels": self.label_map}

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        """Labels and calibration; stage and backend data travel with to_disk only."""
        data: Dict[str, object] = dict(self._cfg())
        if isinstance(self.calibration, Calibrator):
            data["calibration"] = self.calibration.to_dict()
        return srsly.msgpack_dumps(data)

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> "UniNER":
        cfg = srsly.msgpack_loads(data)
        self.label_map = validate_labels(cfg["labels"])
        self._extra_types = None
        if "calibration" in cfg:
            self.calibration = Calibrator.from_dict(cfg["calibration"])
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg.json", self._cfg())
        if isinstance(self.calibration, Calibrator):
            self.calibration.to_disk(path / CALIBRATION_FILE)
        for name, stage in self.stages.items():
            if isinstance(stage, Serializable):
                stage.to_disk(path / "stages" / name)
        if isinstance(self.backend, Serializable):
            self.backend.to_disk(path / "backend")

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = ()) -> "UniNER":
        path = Path(path)
        cfg = srsly.read_json(path / "cfg.json")
        self.label_map = validate_labels(cfg["labels"])
        self._extra_types = None
        if (path / CALIBRATION_FILE).exists():
            self.calibration = Calibrator.from_disk(path / CALIBRATION_FILE)
        for name, stage in self.stages.items():
            if isinstance(stage, Serializable) and (path / "stages" / name).exists():
                stage.from_disk(path / "stages" / name)
        if isinstance(self.backend, Serializable) and (path / "backend").exists():
            self.backend.from_disk(path / "backend")
        return self
