"""The `uniner` pipe under faults: spaCy's error-handler contract, and `on_error = "record"`.

Record (the default) writes every failure into its own doc's stats and yields the doc marked
incomplete, leaving the other docs of the batch alone; raise hands the batch to the error handler
`nlp.set_error_handler` set. All on the canned backend, with a wrapper that fails on request.
"""
import dataclasses
import json
import logging

import pytest
import spacy
from conftest import canned

from uniner_spacy.errors import ConfigError, ModelNotFound
from uniner_spacy.questions.parsing import MAX_MENTIONS
from uniner_spacy.types import Generation, Stats

LABELS = ["person", "organization", "location"]
GOOD = ["Alice Smith works for Acme Corp in Berlin.", "Bob Jones flew to Paris with Alice Smith."]
BAD = "BOOM: Bob Jones flew to Paris."  # the wrapper fails on texts holding BOOM
LOGGER = "uniner_spacy.pipeline.component"


class Failing:
    """Wraps a backend and fails where a text holds BOOM: in `token_offsets`, for the whole call, or
    per query (`Generation.error`, as the OpenAI backend reports a failed request)."""

    def __init__(self, inner, where):
        self.inner, self.where = inner, where

    @property
    def model_id(self):
        return self.inner.model_id

    def token_offsets(self, text):
        if self.where == "offsets" and "BOOM" in text:
            raise ValueError("tokenizer broke")
        return self.inner.token_offsets(text)

    def __call__(self, queries, *, mark_forced=False):
        if self.where == "call" and any("BOOM" in q.passage for q in queries):
            raise ConnectionError("server went away")
        if self.where == "model":
            raise ModelNotFound("the model is not installed")
        gens = self.inner(queries, mark_forced=mark_forced)
        if self.where == "query":
            return [Generation(text="", error="APIConnectionError: refused") if "BOOM" in q.passage else g
                    for q, g in zip(queries, gens)]
        return gens


def make_nlp(where=None, **cfg):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": LABELS, "backend": canned(), "calibration": None, **cfg})
    if where is not None:
        comp = nlp.get_pipe("uniner")
        comp.backend = Failing(comp.backend, where)
    return nlp


def ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def stats(doc):
    return Stats.from_dict(doc._.uniner_stats)


EXPECTED = [ents(d) for d in make_nlp().pipe(GOOD)]


# -- on_error = "raise": spaCy's error handler ---------------------------------------------------
def test_the_handler_nlp_sets_gets_each_failing_batch_and_the_stream_goes_on():
    nlp = make_nlp("call", on_error="raise")
    seen = []
    nlp.set_error_handler(lambda name, proc, docs, err: seen.append((name, proc, [d.text for d in docs], err)))
    docs = list(nlp.pipe([GOOD[0], BAD, GOOD[1]], batch_size=1))
    assert [d.text for d in docs] == GOOD  # the failed batch is not yielded, as in spaCy's pipes
    assert [ents(d) for d in docs] == EXPECTED and all(stats(d).complete for d in docs)
    [(name, proc, texts, err)] = seen
    assert name == "uniner" and proc is nlp.get_pipe("uniner") and texts == [BAD]
    assert isinstance(err, ConnectionError)
    doc = nlp(BAD)  # one doc: the handler returns, the doc comes back unannotated
    assert doc._.uniner_stats is None and len(seen) == 2


def test_the_default_handler_reraises():
    with pytest.raises(ConnectionError, match="server went away"):
        list(make_nlp("call", on_error="raise").pipe([GOOD[0], BAD]))
    with pytest.raises(ValueError, match="tokenizer broke"):
        make_nlp("offsets", on_error="raise")(BAD)
    # a per-query failure is a failure too: raise never yields an incomplete doc
    with pytest.raises(RuntimeError, match="2 of 6 queries failed: canned failure"):
        list(make_nlp(on_error="raise", backend=canned(errors=["person"])).pipe(GOOD))


def test_record_mode_never_calls_the_handler():
    nlp = make_nlp("call")
    seen = []
    nlp.set_error_handler(lambda *args: seen.append(args))
    assert len(list(nlp.pipe([GOOD[0], BAD]))) == 2 and seen == []


def test_a_setup_error_goes_to_the_handler_even_when_recording():
    """A setting that cannot work fails every doc alike: it stops the run rather than marking it all."""
    nlp = make_nlp()

    def misconfigured(doc, candidates):
        raise ConfigError("no such gazetteer")

    nlp.get_pipe("uniner").stages = {"bad": misconfigured}
    with pytest.raises(ConfigError):
        list(nlp.pipe(GOOD))
    with pytest.raises(ModelNotFound):
        list(make_nlp("model").pipe(GOOD))


# -- on_error = "record": the failing doc only, marked incomplete -------------------------------
def check_recorded(nlp, batch_size=8):
    """BAD between the good texts: it is yielded, incomplete; the good ones are complete and correct."""
    docs = list(nlp.pipe([GOOD[0], BAD, GOOD[1]], batch_size=batch_size))
    assert [d.text for d in docs] == [GOOD[0], BAD, GOOD[1]]
    assert [ents(docs[0]), ents(docs[2])] == EXPECTED
    assert stats(docs[0]).complete and stats(docs[2]).complete
    assert not stats(docs[1]).complete
    return stats(docs[1])


def test_a_token_offsets_failure_is_recorded_on_its_doc():
    bad = check_recorded(make_nlp("offsets"))
    assert bad.errors == ["passages: ValueError: tokenizer broke"] and bad.queries == 0


def test_a_failed_backend_call_is_recorded_on_its_batch():
    nlp = make_nlp("call")
    bad = check_recorded(nlp, batch_size=1)
    assert bad.backend_errors == bad.queries == 3 and bad.errors == ["backend: ConnectionError: server went away"]
    docs = list(nlp.pipe([GOOD[0], BAD]))  # one call for the batch: both docs lose their answers
    assert [stats(d).backend_errors for d in docs] == [3, 3] and [ents(d) for d in docs] == [[], []]


def test_a_failed_query_is_recorded_on_its_doc():
    bad = check_recorded(make_nlp("query"))
    assert bad.backend_errors == 3 and len(bad.errors) == 1 and bad.errors[0].startswith("backend: ")


def test_a_failing_answer_is_recorded_on_its_doc(monkeypatch):
    import uniner_spacy.pipeline.component as component

    nlp = make_nlp()
    monkeypatch.setattr(component, "mention_scores", lambda *args: 1 / 0)
    doc = nlp(GOOD[0])
    assert ents(doc) == [] and not stats(doc).complete
    assert stats(doc).errors == [f"answer ({t}): ZeroDivisionError: division by zero" for t in LABELS]


def test_a_failing_calibration_is_recorded_on_its_doc():
    nlp = make_nlp()
    nlp.get_pipe("uniner").calibration = lambda score, label: 1 / 0
    doc = nlp(GOOD[0])
    assert ents(doc) == [] and not stats(doc).complete
    assert stats(doc).errors == ["calibration: ZeroDivisionError: division by zero"]


def test_a_failing_stage_leaves_the_candidates_from_before_it():
    nlp = make_nlp()

    def halve(doc, candidates):
        return [dataclasses.replace(c, score=c.score / 2) for c in candidates]

    def boom(doc, candidates):
        if "BOOM" in doc.text:
            raise KeyError("no such rule")
        return candidates

    def after(doc, candidates):
        return [dataclasses.replace(c, source="after") for c in candidates]

    nlp.get_pipe("uniner").stages = {"halve": halve, "boom": boom, "after": after}
    docs = list(nlp.pipe([GOOD[0], BAD]))
    assert stats(docs[0]).complete and {e._.uniner_source for e in docs[0].ents} == {"after"}
    bad = stats(docs[1])
    assert bad.errors == ["stage boom: KeyError: 'no such rule'"] and bad.backend_errors == 0
    assert ents(docs[1]) == [("Bob Jones", "person"), ("Paris", "location")]  # halved, not "after"
    assert all(e._.uniner_source != "after" and e._.uniner_score < 0.6 for e in docs[1].ents)



def test_a_batch_stage_that_fails_runs_each_doc_alone():
    """`pipe` over the batch fails for one doc's sake: each doc is then run alone, and only that
    doc records the failure."""
    nlp = make_nlp()

    class Tagging:
        batches = 0

        def __call__(self, doc, candidates):
            if "BOOM" in doc.text:
                raise KeyError("no such rule")
            return [dataclasses.replace(c, source="tagged") for c in candidates]

        def pipe(self, docs, candidate_lists):
            self.batches += 1
            return [self(doc, candidates) for doc, candidates in zip(docs, candidate_lists)]

    stage = Tagging()
    nlp.get_pipe("uniner").stages = {"tag": stage}
    docs = list(nlp.pipe([GOOD[0], GOOD[1]]))
    assert stage.batches == 1 and all(stats(d).complete for d in docs)
    assert {e._.uniner_source for d in docs for e in d.ents} == {"tagged"}
    docs = list(nlp.pipe([GOOD[0], BAD]))
    assert stage.batches == 2
    assert stats(docs[0]).complete and {e._.uniner_source for e in docs[0].ents} == {"tagged"}
    assert stats(docs[1]).errors == ["stage tag: KeyError: 'no such rule'"]

# -- logging -------------------------------------------------------------------------------------
def test_one_warning_per_failing_batch_with_counts(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    list(make_nlp("query").pipe(GOOD * 2))
    assert caplog.records == []  # nothing when all is well
    list(make_nlp("query").pipe([GOOD[0], BAD, BAD, GOOD[1]] + GOOD * 2, batch_size=4))
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.name == LOGGER
    assert record.getMessage() == ("uniner: 6 of 12 queries failed in a batch of 4 docs (2 docs incomplete): "
                                   "APIConnectionError: refused (first error)")
    caplog.clear()
    list(make_nlp("offsets").pipe([BAD, GOOD[0]]))
    [record] = caplog.records
    assert "1 other error in a batch of 2 docs (1 docs incomplete): passages: ValueError" in record.getMessage()


# -- answers: truncation, items that are not strings, the size cap --------------------------------
class CutOff:
    """Marks every answer as cut at the token limit, as the HF and OpenAI backends do."""

    def __init__(self, inner):
        self.inner, self.model_id, self.token_offsets = inner, inner.model_id, inner.token_offsets

    def __call__(self, queries, *, mark_forced=False):
        return [dataclasses.replace(g, finish_reason="length") for g in self.inner(queries, mark_forced=mark_forced)]


def test_truncated_answers_are_counted_and_what_came_before_the_cut_is_used():
    nlp = make_nlp(backend=canned(raw={"location": ' ["Paris", "Atl'}))
    doc = nlp(GOOD[1])
    assert ("Paris", "location") in ents(doc)
    assert stats(doc).truncated == 1 and stats(doc).parse_failures == 0 and stats(doc).complete
    comp = nlp.get_pipe("uniner")
    comp.backend = CutOff(comp.backend)
    doc = nlp(GOOD[1])
    assert stats(doc).truncated == 3  # finish_reason "length"; the unclosed answer is counted once
    assert ("Paris", "location") in ents(doc) and ("Bob Jones", "person") in ents(doc)


def test_items_that_are_not_strings_give_no_mentions():
    raw = {"person": '[{"name": "Bob Jones"}]', "location": '["Paris", {"city": "Alice Smith"}]'}
    doc = make_nlp(backend=canned(raw=raw))(GOOD[1])
    assert ents(doc) == [("Paris", "location")]
    assert stats(doc).parse_failures == 1 and stats(doc).unaligned == []


def test_an_answer_is_capped_at_max_mentions():
    listed = ["Bob Jones"] + [f"x{i}" for i in range(MAX_MENTIONS)] + ["Alice Smith"]
    doc = make_nlp(labels=["person"], backend=canned(raw={"person": json.dumps(listed)}))(GOOD[1])
    assert ents(doc) == [("Bob Jones", "person")]  # Alice Smith came after the cut
    assert stats(doc).truncated == 1 and len(stats(doc).unaligned) == MAX_MENTIONS - 1
