"""The `uniner` pipe: chunk → ask → parse → align → stages → resolve → write spans.

The class keeps the behaviour and the factory only wires configuration, as in
spaCy's own SpanRuler. All (chunk, label) queries of an `nlp.pipe` batch go to
the backend together, so batching across documents is the backend's job.

Failures follow spaCy's contract for pipes (`Pipe.get_error_handler`, set by
`nlp.set_error_handler`), with `on_error` choosing who handles them: "record"
writes each failure into its doc's stats and yields the doc marked incomplete,
"raise" hands the batch to the error handler, as spaCy's own pipes do.
"""
from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Union,
    runtime_checkable,
)

import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from spacy.util import minibatch

from ..backends.base import Backend
from ..errors import BackendError, ConfigError, ModelNotFound
from ..questions.parsing import mention_scores, parse_answer
from ..questions.prompts import type_phrase
from ..registry import registry
from ..trust import contained, read_inside
from ..types import Candidate, Generation, Labels, Passage, Query, Serializable, Stats, label_key
from .align import align_mention, token_bounds_in
from .calibration import CALIBRATION_FILE, Calibrator, for_student
from .chunking import chunk_text, doc_units
from .resolve import POLICIES, consolidate, resolve

logger = logging.getLogger(__name__)

# Extra entity types to ask for each label (paraphrase matching): {label: [type, ...]}
Paraphraser = Callable[[Dict[str, Optional[str]]], Dict[str, List[str]]]
# A post-processing stage over one doc's candidates: rules, conflicts, precision check.
Stage = Callable[[Doc, List[Candidate]], List[Candidate]]


@runtime_checkable
class BatchStage(Protocol):
    """A stage that also takes a batch's docs in one call (`pipe`, as spaCy's pipes do), where one
    call costs less than one per doc; it must equal calling the stage on each doc."""

    def __call__(self, doc: Doc, candidates: List[Candidate]) -> List[Candidate]: ...

    def pipe(self, docs: Sequence[Doc], candidate_lists: Sequence[List[Candidate]]) -> List[List[Candidate]]: ...


# A setting or a model that cannot work (a missing rules file, an uninstalled model) fails every doc
# alike: it goes to the error handler under either `on_error`, so a typo stops the run at its first
# batch instead of marking a whole corpus incomplete.
SETUP_ERRORS = (ConfigError, ModelNotFound)
# the step a failed question is recorded under in `Stats.errors` (with the backend's message)
BACKEND_STEP = "backend"

# the most docs `pipe` gathers for one backend call, whatever the backend's capacity (memory)
MAX_DOCS_PER_BATCH = 1024

DEFAULT_BACKEND = {"@misc": "uniner.HF.v1", "model": "embedded"}
# what `stages` unset (null) means; measured in benchmarks/ablation.py: the largest single gain
DEFAULT_STAGES = {"conflicts": {"@misc": "uniner.Conflicts.v1"}}


def _json(text: str, where: Path) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    return data


# what each candidate span carries, read and written as `span._.<name>`
CANDIDATE_FIELDS = ("uniner_score", "uniner_raw_score", "uniner_source", "uniner_match")


def _candidate_key(name: str, span: Span) -> tuple:
    """Where a candidate's value lives in `doc.user_data`: spaCy keys a span extension by its offsets
    only, so two labels of one span would share one value; this key adds the label (the 4-tuple
    form of spaCy's own keys with the label after it, serialised with the doc's user data)."""
    return ("._.", name, span.start_char, span.end_char, span.label_)


def _candidate_getter(name: str):
    def get(span: Span):
        user_data: Dict[Any, Any] = span.doc.user_data  # tuple keys, as spaCy's own extensions use
        return user_data.get(_candidate_key(name, span))
    get.uniner_field = name  # type: ignore[attr-defined]
    return get


def _candidate_setter(name: str):
    def set_(span: Span, value) -> None:
        user_data: Dict[Any, Any] = span.doc.user_data
        user_data[_candidate_key(name, span)] = value
    return set_


def register_extensions() -> None:
    """Extra data lives in extensions, never in new Doc attributes. A candidate's values are keyed by
    (start, end, label), so the `organization` claim on a span reads its own score, not the winner's."""
    if not Doc.has_extension("uniner_stats"):
        Doc.set_extension("uniner_stats", default=None)
    for name in CANDIDATE_FIELDS:
        getter = Span.get_extension(name)[2] if Span.has_extension(name) else None
        if getattr(getter, "uniner_field", None) != name:
            Span.set_extension(name, getter=_candidate_getter(name), setter=_candidate_setter(name), force=True)


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
        "label_set_prompt": False,
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
    label_set_prompt: bool,
    on_error: str,
    drop_forced: bool,
    paraphrases: Optional[Paraphraser],
    stages: Optional[Dict[str, Any]],  # Stage callables; `Any`: confection validates before it builds
    calibration: Optional[Calibrator],
    scorer: Optional[Callable],
) -> "UniNER":
    if stages is None:
        stages = registry.resolve({"stages": DEFAULT_STAGES})["stages"]
    calibration = for_student(calibration, getattr(backend, "name", ""))
    return UniNER(
        nlp.vocab, backend, name=name, labels=labels, spans_key=spans_key,
        max_passage_tokens=max_passage_tokens, overlap_tokens=overlap_tokens,
        fuzzy_threshold=fuzzy_threshold, threshold=threshold, overlap_policy=overlap_policy,
        write_ents=write_ents, keep_existing_ents=keep_existing_ents,
        question_mode=question_mode, label_set_prompt=label_set_prompt, on_error=on_error,
        drop_forced=drop_forced, paraphrases=paraphrases,
        stages=stages, calibration=calibration, scorer=scorer,
    )


# Strings a chat model's tokenizer reads as control tokens wherever they stand: ChatML's `<|...|>` family
# (the embedded model's `<|im_start|>`, `<|im_end|>`, `<|endoftext|>`; Llama 3's, Phi's), the embedded
# tokenizer's other special tokens, LLaMA's, Gemma's and Mistral's. Labels and descriptions stand in the
# question as they are (only a passage's are split as text), so there one would be that token. A test
# checks the embedded tokenizer's list against this.
SPECIAL_TOKENS = re.compile(r"<\|[^<>|]*\|>|</?s>|<(?:unk|pad|bos|eos|start_of_turn|end_of_turn)>|\[/?INST\]|"
                            r"<(?:empty_output|file_sep|filename|gh_stars|issue_(?:closed|comment|start)|"
                            r"jupyter_(?:code|output|script|start|text)|repo_?name)>")
# line breaks, tabs and the other control characters; zero-width and direction marks (format); surrogates
CONTROL_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def check_label_text(text: str, what: str = "Label") -> None:
    """A label or description is one line of plain text: no control character, no special token."""
    bad = next((c for c in text if unicodedata.category(c) in CONTROL_CATEGORIES), None)
    if bad is not None:
        raise ConfigError(f"{what} {text!r} holds a control character ({unicodedata.name(bad, 'unnamed')}, "
                          f"U+{ord(bad):04X}): labels and descriptions are one line of plain text")
    found = SPECIAL_TOKENS.search(text)
    if found:
        raise ConfigError(f"{what} {text!r} holds {found.group()!r}, a special token of chat models: in the "
                          "question it would be read as that token, not as text")


def validate_labels(labels: Labels) -> Dict[str, Optional[str]]:
    """{label: description or None}; empty or duplicate labels, and labels or descriptions with control
    characters or special-token strings (`check_label_text`), are a config error."""
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
        check_label_text(label)
        if desc is not None:
            if not isinstance(desc, str):
                raise ConfigError(f"The description of {label!r} must be a string or null, got {desc!r}")
            check_label_text(desc, f"The description of {label!r}")
        key = label_key(label)
        if key in seen:
            raise ConfigError(f"Duplicate label {label!r} (same as {seen[key]!r}); list each label once")
        seen[key] = label
        out[label] = desc
    return out


class UniNER(Pipe):
    """A spaCy `Pipe` (no trainable model): its error handler is the one `nlp.set_error_handler` sets."""

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
        label_set_prompt: bool = False,
        on_error: str = "record",
        drop_forced: bool = False,
        paraphrases: Optional[Paraphraser] = None,
        stages: Optional[Dict[str, Stage]] = None,
        calibration: Optional[Calibrator] = None,
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
        # every label shown before each passage: only for a student trained on that prompt (prompts.LABEL_SET)
        self.label_set_prompt = label_set_prompt
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
        shown = self.labels if self.label_set_prompt else ()
        out = []
        for label in self.label_map:
            out.append(Query(passage.text, self.entity_type(label), label, words, shown))
            out.extend(Query(passage.text, t, label, words, shown) for t in self.extra_types.get(label, []))
        return out

    def entity_type(self, label: str) -> str:
        """What the question names: the label, its description, or both."""
        return type_phrase(label, self.label_map.get(label), self.question_mode)

    def ask(self, queries: List[Query]) -> List[Generation]:
        """One answer per query; a failed call fails each of its queries (`Generation.error`).

        With on_error = "raise" any failed query raises, so the batch goes to the error handler.
        """
        if not queries:
            return []
        try:
            gens = self.backend(queries, mark_forced=self.drop_forced)
            if len(gens) != len(queries):
                raise BackendError(f"backend returned {len(gens)} answers for {len(queries)} queries")
        except Exception as err:
            if self.on_error == "raise" or isinstance(err, SETUP_ERRORS):
                raise
            return [Generation(text="", error=f"{type(err).__name__}: {err}") for _ in queries]
        if self.on_error == "raise":
            failed = [g.error for g in gens if g.error is not None]
            if failed:
                raise BackendError(f"uniner: {len(failed)} of {len(queries)} queries failed: {failed[0]}")
        return gens

    def recorded(self, step: str, stats: Stats, err: Exception) -> None:
        """Write a failure of `step` into one doc's stats, or (on_error = "raise", a setup error) raise it on."""
        if self.on_error == "raise" or isinstance(err, SETUP_ERRORS):
            raise err
        stats.errors.append(f"{step}: {type(err).__name__}: {err}")

    def doc_queries(self, doc: Doc, stats: Stats) -> List[Tuple[Passage, Query]]:
        """The doc's questions, each with its passage; none (and the error recorded) if they fail."""
        try:
            passages = self.passages(doc)
        except Exception as err:
            self.recorded("passages", stats, err)
            return []
        stats.passages = len(passages)
        bounds = [(t.idx, t.idx + len(t)) for t in doc]
        try:
            return [(p, q) for p in passages
                    for q in self.queries(p, tuple(token_bounds_in(bounds, p.start, p.start + len(p.text))))]
        except Exception as err:
            self.recorded("questions", stats, err)
            return []

    def predict(self, docs: Sequence[Doc]) -> List[Tuple[List[Candidate], Stats]]:
        start = time.perf_counter()
        stats = [Stats() for _ in docs]
        owners: List[Tuple[int, Passage]] = []
        queries: List[Query] = []
        for i, doc in enumerate(docs):
            for passage, query in self.doc_queries(doc, stats[i]):
                owners.append((i, passage))
                queries.append(query)
        gens = self.ask(queries)
        found: List[List[Candidate]] = [[] for _ in docs]
        for (i, passage), query, gen in zip(owners, queries, gens):
            stats[i].queries += 1
            try:
                found[i].extend(self.read_answer(passage, query, gen, stats[i]))
            except Exception as err:
                self.recorded(f"answer ({query.entity_type})", stats[i], err)
        elapsed = time.perf_counter() - start
        total = max(1, len(queries))
        results = []
        staged = self.run_stages(docs, found, stats)
        for i, candidates in enumerate(staged):
            stats[i].seconds = elapsed * stats[i].queries / total
            try:
                kept = [c for c in candidates if self.chance(c) >= self.threshold]
            except Exception as err:
                self.recorded("calibration", stats[i], err)
                kept = []
            results.append((kept, stats[i]))
        self.log_failures(stats, gens)
        return results

    def run_stages(self, docs: Sequence[Doc], found: Sequence[List[Candidate]],
                   stats: Sequence[Stats]) -> List[List[Candidate]]:
        """Merge each doc's candidates and run the stages; a stage that fails for a doc ends that doc's
        run, and it keeps the candidates from before it (the later stages were written for its output).
        A `BatchStage` takes the batch's docs in one call; if that fails, each doc is run alone, so a
        failure is recorded for the docs it belongs to only."""
        out: List[List[Candidate]] = []
        running: List[int] = []  # docs whose stages go on
        for i, candidates in enumerate(found):
            try:
                out.append(consolidate(candidates))
                running.append(i)
            except Exception as err:
                self.recorded("merging", stats[i], err)
                out.append([])
        for name, stage in self.stages.items():
            if isinstance(stage, BatchStage) and len(running) > 1:
                try:
                    staged = stage.pipe([docs[i] for i in running], [out[i] for i in running])
                    if len(staged) != len(running):
                        raise ConfigError(f"pipe returned {len(staged)} candidate lists for {len(running)} docs")
                except Exception as err:  # the docs alone say which failed
                    logger.debug("stage %s failed on a batch (%s); running its docs one by one", name, err)
                else:
                    for i, candidates in zip(running, staged):
                        out[i] = candidates
                    continue
            still = []
            for i in running:
                try:
                    out[i] = stage(docs[i], out[i])
                    still.append(i)
                except Exception as err:
                    self.recorded(f"stage {name}", stats[i], err)
            running = still
        return out

    def chance(self, candidate: Candidate) -> float:
        """The candidate's final score through the calibration: the chance it is right, which
        `threshold` reads and a span keeps. The stages and the choice of `doc.ents` between overlaps
        use the scores before it: the stages were tuned on them (mapping first changed which label
        conflict resolution kept, for the worse), and a mapping per label could reorder two
        labels' overlapping spans."""
        return candidate.score if self.calibration is None else self.calibration(candidate.score, candidate.label)

    def log_failures(self, stats: Sequence[Stats], gens: Sequence[Generation]) -> None:
        """One warning per batch that had failures, with counts and the first error; none otherwise."""
        failed = sum(s.backend_errors for s in stats)
        errors = [e for s in stats for e in s.errors if not e.startswith(BACKEND_STEP + ":")]
        if not failed and not errors:
            return
        parts = []
        if failed:
            parts.append(f"{failed} of {sum(s.queries for s in stats)} queries failed")
        if errors:
            parts.append(f"{len(errors)} other error{'s' if len(errors) > 1 else ''}")
        first = next((g.error for g in gens if g.error is not None), None) or errors[0]
        incomplete = sum(not s.complete for s in stats)
        logger.warning("uniner: %s in a batch of %d docs (%d docs incomplete): %s (first error)",
                       " and ".join(parts), len(stats), incomplete, first)

    def read_answer(
        self, passage: Passage, query: Query, gen: Generation, stats: Stats,
    ) -> List[Candidate]:
        """parse → score → align (to the passage's tokens, `query.words`) for one answer; failures go to `stats`."""
        if gen.error is not None:
            stats.backend_errors += 1
            message = f"{BACKEND_STEP}: {gen.error}"[:500]
            if message not in stats.errors:  # each distinct message once: a batch run reports what failed
                stats.errors.append(message)
            return []
        parsed = parse_answer(gen.text)
        if gen.finish_reason == "length" or parsed.repaired:  # cut off: what came before the cut is kept
            stats.truncated += 1
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
            for m in matches:
                out.append(Candidate(
                    passage.start + m.start, passage.start + m.end, query.label,
                    score=raw, source=query.entity_type, match=m.kind, raw_score=raw,
                ))
        return out

    def set_annotations(self, docs: Sequence[Doc], results) -> None:
        """Write each doc; its stats are written even when its spans fail to be (`predict` has logged
        the batch's other failures, so a failure here gets a warning of its own)."""
        failed = []
        for doc, (candidates, stats) in zip(docs, results):
            try:
                self.write(doc, candidates, stats)
            except Exception as err:
                self.recorded("writing", stats, err)
                failed.append(stats.errors[-1])
            doc._.uniner_stats = stats.to_dict()
        if failed:
            logger.warning("uniner: writing failed for %d of %d docs in a batch (docs incomplete): %s (first error)",
                           len(failed), len(docs), failed[0])

    def write(self, doc: Doc, candidates: List[Candidate], stats: Stats) -> None:
        """The candidates as `doc.spans[spans_key]` and, with write_ents, as `doc.ents`."""
        spans, scores = [], []
        for c in candidates:
            span = doc.char_span(c.start, c.end, label=c.label)
            if span is None:  # cannot happen for token-boundary matches; keep it visible
                stats.unaligned.append((c.label, doc.text[c.start : c.end]))
                continue
            span._.uniner_score = self.chance(c)
            span._.uniner_raw_score = c.raw_score
            span._.uniner_source = c.source
            span._.uniner_match = c.match
            spans.append(span)
            scores.append(span._.uniner_score)
        # the group's `scores` (spancat's convention) keeps one per span, as spancat readers expect
        doc.spans[self.spans_key] = SpanGroup(doc, name=self.spans_key, attrs={"scores": scores}, spans=spans)
        if self.write_ents:
            existing = list(doc.ents) if self.keep_existing_ents else []
            taken = [(e.start_char, e.end_char) for e in existing]
            chosen = resolve(candidates, self.overlap_policy, taken)
            by_key = {(s.start_char, s.end_char, s.label_): s for s in spans}
            new = [by_key[k] for k in ((c.start, c.end, c.label) for c in chosen) if k in by_key]
            doc.ents = sorted(existing + new, key=lambda s: s.start)

    # -- spaCy pipe API ----------------------------------------------------
    # As spaCy's TrainablePipe: what escapes a batch (anything, with on_error = "raise") goes to the
    # error handler, which re-raises unless `nlp.set_error_handler` set one that returns; then the
    # stream goes on without that batch's docs.
    def __call__(self, doc: Doc) -> Doc:
        error_handler = self.get_error_handler()
        try:
            self.set_annotations([doc], self.predict([doc]))
        except Exception as err:
            error_handler(self.name, self, [doc], err)
        return doc

    def docs_per_batch(self, batch_size: int) -> int:
        """At least `batch_size` docs, and enough that one backend call fills its `capacity`
        (about one passage per doc): a small `nlp.pipe` batch must not leave the model half idle."""
        capacity = getattr(self.backend, "capacity", None)  # optional for backends of other packages
        if not capacity:
            return batch_size
        per_doc = sum(1 + len(self.extra_types.get(label, [])) for label in self.label_map)
        return max(batch_size, min(MAX_DOCS_PER_BATCH, -(-capacity // max(1, per_doc))))

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        error_handler = self.get_error_handler()
        for docs in minibatch(stream, size=self.docs_per_batch(batch_size)):
            try:
                self.set_annotations(docs, self.predict(docs))
                yield from docs
            except Exception as err:
                error_handler(self.name, self, docs, err)

    def initialize(self, get_examples: Optional[Callable[[], Iterable[Example]]] = None, *, nlp=None,
                   labels: Optional[Labels] = None) -> None:
        if labels is not None:
            self.label_map = validate_labels(labels)
            self._extra_types = None

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
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
                stage.to_disk(contained(path, Path("stages") / name, f"stage {name!r}"))
        if isinstance(self.backend, Serializable):
            self.backend.to_disk(path / "backend")

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = ()) -> "UniNER":
        # every file read inside the folder, regular and capped: a saved pipeline may come from
        # anyone (trust.py, docs/security.md)
        path = Path(path)
        where = f"saved pipe {path}"
        cfg = _json(read_inside(path, "cfg.json", where), path / "cfg.json")
        self.label_map = validate_labels(cfg["labels"])
        self._extra_types = None
        if (path / CALIBRATION_FILE).exists():
            file = path / CALIBRATION_FILE
            self.calibration = Calibrator.from_dict(_json(read_inside(path, CALIBRATION_FILE, where), file), str(file))
        for name, stage in self.stages.items():
            folder = contained(path, Path("stages") / name, where)
            if isinstance(stage, Serializable) and folder.exists():
                stage.from_disk(folder)
        if isinstance(self.backend, Serializable) and (path / "backend").exists():
            self.backend.from_disk(contained(path, "backend", where))
        return self
