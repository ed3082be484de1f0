import functools

import pytest
import spacy
from conftest import TINY_FACTS, canned, fast_path_only

LABELS = ["person", "organization", "location"]
TEXTS = sorted({p for p, _ in TINY_FACTS})


def make_nlp(backend=None, **cfg):
    """The pipe over the canned backend (TINY_FACTS' answers): these tests are about the pipe, not a model."""
    nlp = spacy.blank("en")
    config = {"labels": LABELS, "backend": backend or canned()}
    config.update(cfg)
    nlp.add_pipe("uniner", config=config)
    return nlp


def ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def test_tiny_model_answers_are_known(tiny_model_dir):
    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.types import Query

    backend = HFBackend(str(tiny_model_dir), max_new_tokens=24)
    queries = [Query(p, t, t) for (p, t) in TINY_FACTS]
    answers = [g.text.strip() for g in backend(queries)]
    assert answers == list(TINY_FACTS.values())


def test_component_end_to_end():
    # the tiny model's answer for locations, hallucination included
    nlp = make_nlp(canned(raw={"location": TINY_FACTS[(TEXTS[1], "location")]}))
    doc = nlp("Bob Jones flew to Paris with Alice Smith.")
    assert ents(doc) == [("Bob Jones", "person"), ("Paris", "location"), ("Alice Smith", "person")]
    assert all(0.0 <= e._.uniner_score <= 1.0 for e in doc.ents)
    stats = doc._.uniner_stats
    assert stats["queries"] == 3 and stats["parse_failures"] == 0
    assert stats["unaligned"] == [["location", "Atlantis"]]  # hallucination kept in the stats
    assert {(s.text, s.label_) for s in doc.spans["uniner"]} == {
        ("Bob Jones", "person"), ("Paris", "location"), ("Alice Smith", "person")
    }


def test_pipe_equals_one_by_one():
    nlp = make_nlp()
    backend = nlp.get_pipe("uniner").backend
    texts = TEXTS * 3 + ["", "   "]
    piped = [ents(d) for d in nlp.pipe(texts, batch_size=4)]
    assert backend.calls == [(4 * 3, False), (2 * 3, False)]  # one backend call per batch, all its queries
    single = [ents(nlp(t)) for t in texts]
    assert backend.calls[2:] == [(3, False)] * 6  # the empty docs ask nothing
    assert piped == single
    assert piped[-1] == [] and piped[-2] == []
    assert ("Acme Corp", "organization") in piped[0] + piped[1]


def test_to_disk_from_disk_round_trip(tmp_path):
    nlp = make_nlp()
    nlp.get_pipe("uniner").add_label("date")
    nlp.to_disk(tmp_path / "pipe")
    nlp2 = spacy.load(tmp_path / "pipe")
    assert nlp2.get_pipe("uniner").labels == ("person", "organization", "location", "date")
    assert [ents(d) for d in nlp2.pipe(TEXTS)] == [ents(d) for d in nlp.pipe(TEXTS)]


def test_config_assembles():
    nlp = make_nlp()
    config = nlp.config
    nlp2 = spacy.util.load_model_from_config(config, auto_fill=True)
    assert nlp2.pipe_names == ["uniner"]
    assert nlp2.get_pipe("uniner").labels == tuple(LABELS)


def test_labels_with_descriptions():
    nlp = make_nlp(labels={"person": "A human being.", "location": None})
    assert nlp.get_pipe("uniner").labels == ("person", "location")
    nlp2 = make_nlp(labels={"person": "A human being."}, question_mode="both")
    assert nlp2.get_pipe("uniner").entity_type("person") == "person (A human being)"


@pytest.mark.parametrize("labels", [[], ["person", "Person"], [""], "person"])
def test_bad_labels_fail_at_construction(labels):
    with pytest.raises(ValueError):
        make_nlp(labels=labels)


def test_keep_existing_ents():
    nlp = make_nlp(keep_existing_ents=True)
    doc = nlp.make_doc("Bob Jones flew to Paris with Alice Smith.")
    doc.ents = [doc.char_span(0, 9, label="CUSTOMER")]
    doc = nlp.get_pipe("uniner")(doc)
    assert ents(doc)[0] == ("Bob Jones", "CUSTOMER")
    assert ("Paris", "location") in ents(doc)


def test_huge_and_foreign_docs_do_not_crash():
    nlp = make_nlp(labels=["person"])
    huge = "Alice Smith works for Acme Corp in Berlin. " * 2400  # ~100,000 characters
    comp = nlp.get_pipe("uniner")
    doc = nlp.make_doc(huge)
    passages = comp.passages(doc)
    assert all(p.n_tokens <= 256 for p in passages)
    assert len(passages) > len(comp.backend.token_offsets(huge)) / 256 > 80  # every token in some passage
    assert passages[-1].start + len(passages[-1].text) == len(huge.rstrip())
    foreign = nlp("Владимир живёт в Москве. 東京に住んでいます。")
    assert foreign._.uniner_stats["queries"] == 1
    assert foreign._.uniner_stats["backend_errors"] == 0


def test_queries_carry_the_docs_token_offsets():
    """The grammar bounds mentions by the doc's own tokens, so the backend must be given them."""
    nlp = make_nlp(labels=["person", "location"])
    backend = nlp.get_pipe("uniner").backend
    doc = nlp("Bob Jones flew to Paris with Alice Smith.")
    assert len(backend.asked) == 2
    assert all(q.words == tuple((t.idx, t.idx + len(t)) for t in doc) for q in backend.asked)
    assert ("Paris", "location") in ents(doc)


def test_drop_forced_asks_for_marks_and_drops_the_marked_mentions():
    """Marks cost a constrained backend an output layer, so the pipe asks for them only to drop them."""
    text = "Bob Jones flew to Paris with Alice Smith."
    kept = make_nlp(canned(forced=["Alice Smith"]), labels=["person"])
    doc = kept(text)
    assert ents(doc) == [("Bob Jones", "person"), ("Alice Smith", "person")]
    assert kept.get_pipe("uniner").backend.calls == [(1, False)] and doc._.uniner_stats["forced"] == 0
    dropped = make_nlp(canned(forced=["Alice Smith"]), labels=["person"], drop_forced=True)
    doc = dropped(text)
    assert ents(doc) == [("Bob Jones", "person")]
    assert dropped.get_pipe("uniner").backend.calls == [(1, True)] and doc._.uniner_stats["forced"] == 1


def test_prefix_sharing_equals_unshared_token_for_token(tiny_model_dir):
    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.types import Query

    queries = [Query(p, t, t) for (p, t) in TINY_FACTS] + [Query(TEXTS[0], "work of art", "x")]
    plain = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=4, prefix_sharing=False)(queries)
    shared = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=4, prefix_sharing=True)(queries)
    assert [g.text for g in shared] == [g.text for g in plain]
    assert [t for g in shared for t, _ in g.token_logprobs] == [t for g in plain for t, _ in g.token_logprobs]
    # passages of three lengths prefilled one run each (padded to its own longest) into one slab; in
    # float32, as bf16 (dtype "auto" on a CPU with native bf16) rounds rows of other padding apart
    queries += [Query("Carol, who met Alice Smith in Berlin last year, now works for Acme Corp too.", "person", "y")]
    plain = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=64, prefix_sharing=False,
                      dtype="float32")(queries)
    runs = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=64, prefix_sharing=True, dtype="float32")
    runs._prefill_passages = functools.partial(runs._prefill_passages, chunk=1)
    got = runs(queries)
    assert [g.text for g in got] == [g.text for g in plain]
    assert [lp for g in got for _, lp in g.token_logprobs] == pytest.approx(
        [lp for g in plain for _, lp in g.token_logprobs], abs=1e-4)



def test_label_set_prompt_shows_every_label_and_shares_prefixes_by_it(tiny_model_dir):
    """The pipe shows its labels with every question when asked to; a passage shown with two label sets
    is two prefixes, and prefix sharing answers as the unshared prompts do."""
    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.types import Query

    pipe = make_nlp(label_set_prompt=True).get_pipe("uniner")
    assert [q.label_set for q in pipe.queries(pipe.passages(spacy.blank("en")(TEXTS[0]))[0])] == [tuple(LABELS)] * 3
    assert all(q.label_set == () for q in make_nlp().get_pipe("uniner").queries(
        pipe.passages(spacy.blank("en")(TEXTS[0]))[0]))
    queries = [Query(p, t, t, label_set=tuple(LABELS)) for (p, t) in TINY_FACTS]
    queries += [Query(TEXTS[0], "person", "person", label_set=("person",)), Query(TEXTS[0], "person", "person")]
    kw = dict(max_new_tokens=24, batch_size=8, dtype="float32")
    plain = HFBackend(str(tiny_model_dir), prefix_sharing=False, **kw)
    shared = HFBackend(str(tiny_model_dir), prefix_sharing=True, **kw)
    assert plain.prompts(queries[:1])[0].startswith(
        "A virtual assistant answers questions from a user based on the provided text. USER: Entity types: "
        "person, organization, location. Text: ")
    a, b = plain(queries), shared(queries)
    assert [g.text for g in b] == [g.text for g in a]
    assert [lp for g in b for _, lp in g.token_logprobs] == pytest.approx(
        [lp for g in a for _, lp in g.token_logprobs], abs=1e-4)


def test_type_last_layout_comes_from_the_model_folder_and_shares_up_to_the_type(tiny_model_dir, tmp_path):
    """A folder that records the type-last layout is asked in it (`layout = "auto"`); prefix sharing then
    runs only each type's own tokens per question, and answers as the unshared prompts do."""
    import shutil

    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.questions.prompts import write_layout
    from uniner_spacy.types import Query

    folder = tmp_path / "type-last"
    shutil.copytree(tiny_model_dir, folder)
    write_layout(folder, "type-last")
    kw = dict(max_new_tokens=24, batch_size=8, dtype="float32")
    plain, shared = HFBackend(str(folder), prefix_sharing=False, **kw), HFBackend(str(folder), **kw)
    assert HFBackend(str(tiny_model_dir)).prompter.layout == "uniner"
    assert HFBackend(str(folder), layout="uniner").prompter.layout == "uniner"
    assert shared.prompter.layout == "type-last" and shared.model_id != HFBackend(str(tiny_model_dir)).model_id
    queries = [Query(p, t, t) for (p, t) in TINY_FACTS]
    assert plain.prompts(queries[:1])[0].endswith("USER: What describes this type in the text? ASSISTANT: person:")
    a, b = plain(queries), shared(queries)
    questions = [shared.template.question_turn(t) for t in ("person", "organization")]
    prefixes = [shared.template.prefix(queries[0].passage)]
    head, qhead = shared._split(prefixes, questions, shared.template.passage_span(queries[0].passage))
    assert [q[len(qhead):] for q in questions] == [" person:", " organization:"]
    assert [g.text for g in b] == [g.text for g in a]
    assert [lp for g in b for _, lp in g.token_logprobs] == pytest.approx(
        [lp for g in a for _, lp in g.token_logprobs], abs=1e-4)


@fast_path_only()
def test_fused_layers_answer_as_the_originals(tiny_model_dir):
    """The CPU route fuses each layer's products by default (`fused`); the answers stay the same."""
    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.types import Query

    queries = [Query(p, t, t) for (p, t) in TINY_FACTS]
    fused = HFBackend(str(tiny_model_dir), max_new_tokens=24, dtype="float32")
    plain = HFBackend(str(tiny_model_dir), max_new_tokens=24, dtype="float32", fused=False)
    a, b = fused(queries), plain(queries)
    assert hasattr(fused.model.model.layers[0].self_attn, "_qkv")
    assert not hasattr(plain.model.model.layers[0].self_attn, "_qkv")
    assert [g.text for g in a] == [g.text for g in b]
    assert [lp for g in a for _, lp in g.token_logprobs] == pytest.approx(
        [lp for g in b for _, lp in g.token_logprobs], abs=1e-5)

def test_the_pipe_gathers_docs_until_a_call_fills_the_backend():
    """`nlp.pipe(batch_size=2)` over a backend that takes 12 queries at once: 3 labels → 4 docs a call."""
    from uniner_spacy.backends.canned import CannedBackend

    backend = CannedBackend({"person": ["Ada"]})
    backend.capacity = 12
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("uniner", config={"labels": ["person", "city", "company"], "backend": canned()})
    pipe.backend = backend
    assert pipe.docs_per_batch(2) == 4 and pipe.docs_per_batch(10) == 10
    docs = list(nlp.pipe([f"Ada number {i}." for i in range(9)], batch_size=2))
    assert [n for n, _ in backend.calls] == [12, 12, 3] and all(d.ents for d in docs)
    backend.capacity = None
    assert pipe.docs_per_batch(2) == 2
