import pytest
from conftest import TINY_FACTS, embedded_tokenizer

from uniner_spacy.backends.hf.backend import HFBackend
from uniner_spacy.backends.hf.decoding import Step
from uniner_spacy.backends.hf.grammar import DONE, AnswerGrammar, Vocabulary
from uniner_spacy.questions.parsing import parse_answer
from uniner_spacy.types import Query


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary(embedded_tokenizer())


def test_grammar_accepts_only_passage_mentions():
    g = AnswerGrammar("Barack Obama visited Paris, France.")
    assert g.run(b' ["Barack Obama", "Paris"]').mode == DONE
    assert g.run(b"[]").mode == DONE
    assert g.run(b' ["Atlantis"') is None  # not in the passage
    assert g.run(b' ["rack"') is None  # not on a word boundary
    assert g.run(b' [","') is None  # punctuation is no mention
    assert g.run(b'Sure! ["Paris"]') is None


def test_a_few_repeats_close_but_a_loop_is_pushed_on():
    g = AnswerGrammar("Boyzone 's Stephen Gately and Boyzone.", max_repeats=2)
    # a model that wants `Boyzone` again may say so, rather than be pushed into `Boyzone 's`
    assert g.run(b' ["Boyzone", "Stephen Gately", "Boyzone"]').mode == DONE
    assert g.run(b' ["Boyzone", "Boyzone", "Boyzone", "Stephen Gately"]').mode == DONE
    assert g.run(b' ["Boyzone", "Boyzone", "Boyzone", "Boyzone"') is None  # a loop must move on
    assert g.run(b' ["Boyzone", "Boyzone", "Boyzone", "Boyzone \'s"') is not None  # a new mention
    assert parse_answer(' ["Boyzone", "Stephen Gately", "Boyzone"]').mentions == ["Boyzone", "Stephen Gately"]


def test_clitics_stay_with_their_apostrophe_as_in_spacy():
    g = AnswerGrammar("The Beatles's songs and O'Brien's band.")
    assert g.run(b' ["Beatles", "O\'Brien"]').mode == DONE
    assert g.run(b' ["s"') is None  # spaCy never has `s` alone here: it would not align
    assert g.run(b' ["Brien"') is None


def test_the_pipelines_tokens_bound_mentions_when_given():
    import spacy

    text = "The S programming language inspired the systems ' S ' -PLUS and R ."
    doc = spacy.blank("en")(text)
    assert "-PLUS" in [t.text for t in doc]
    words = tuple((t.idx, t.idx + len(t)) for t in doc)
    assert AnswerGrammar(text).run(b' ["PLUS"]').mode == DONE  # its own word split: no span of `doc`
    g = AnswerGrammar(text, words=words)
    assert g.run(b' ["PLUS"') is None
    assert g.run(b' ["R", "S programming language"]').mode == DONE


def test_pieces_keep_characters_split_over_byte_tokens():
    from uniner_spacy.weights import fix_tokenizer

    tok = embedded_tokenizer()
    fix_tokenizer(tok, None)
    import torch

    backend = HFBackend.from_objects(torch.nn.Linear(1, 1), tok)
    answer = ' ["letter eta η", "🎸"]'
    ids = tok(answer, add_special_tokens=False).input_ids
    assert any("\ufffd" in tok.decode([t]) for t in ids)  # some token holds part of a character
    pieces = backend._pieces([Step(t, -0.1) for t in ids] + [Step(tok.eos_token_id, 0.0)])
    assert len(pieces) == len(ids)
    assert "".join(p for p, _ in pieces) == answer
    assert all("\ufffd" not in p for p, _ in pieces)
    # tokenised passages keep their spaces before punctuation, and so must the answers
    answer = ' ["Tanita Tikaram , Blancmange", "Boyzone \'s", "St . Louis"]'
    ids = tok(answer, add_special_tokens=False).input_ids
    assert "".join(p for p, _ in backend._pieces([Step(t, -0.1) for t in ids])) == answer


def test_allowed_tokens_spell_valid_continuations(vocab):
    g = AnswerGrammar("Барак Обама visited Москва.")
    for prefix in (b"", b" [", ' ["Мос'.encode(), ' ["Москва"'.encode()):
        state = g.run(prefix)
        allowed = vocab.allowed(g, state)
        assert allowed
        assert all(g.run(prefix + vocab.bytes[i]) is not None for i in allowed if i != vocab.eos_id)
    assert vocab.allowed(g, g.run(' ["Москва"]'.encode())) == [vocab.eos_id]


def test_constrained_generation_never_hallucinates(tiny_model_dir):
    queries = [Query(p, t, t) for (p, t) in TINY_FACTS]
    free = HFBackend(str(tiny_model_dir), max_new_tokens=24, constrained=False)(queries)
    bound = HFBackend(str(tiny_model_dir), max_new_tokens=24, constrained=True)(queries)
    assert any("Atlantis" in g.text for g in free)  # the tiny model was taught one hallucination
    for q, g in zip(queries, bound):
        parsed = parse_answer(g.text)
        assert parsed.ok and not parsed.repaired, g.text
        assert all(m in q.passage for m in parsed.mentions)
    # answers that were already valid are unchanged
    same = [f.text for f, q in zip(free, queries) if "Atlantis" not in f.text]
    assert same == [b.text for f, b in zip(free, bound) if "Atlantis" not in f.text]


def test_constrained_with_prefix_sharing(tiny_model_dir):
    queries = [Query(p, t, t) for (p, t) in TINY_FACTS]
    a = HFBackend(str(tiny_model_dir), max_new_tokens=24, constrained=True, prefix_sharing=False)(queries)
    b = HFBackend(str(tiny_model_dir), max_new_tokens=24, constrained=True, prefix_sharing=True)(queries)
    assert [g.text for g in a] == [g.text for g in b]


def test_allowed_tokens_only_logits_equal_masked_full_logits(tiny_model_dir):
    """Computing the output layer for the allowed tokens only changes nothing but the work."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from uniner_spacy.backends.hf.decoding import greedy_decode
    from uniner_spacy.backends.hf.grammar import AnswerGrammar, JsonListConstraint, Vocabulary
    from uniner_spacy.questions.prompts import Template

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    template = Template(eos=tok.eos_token)
    queries = list(TINY_FACTS)
    enc = tok([template.render(p, t) for p, t in queries], return_tensors="pt", padding=True)
    grammars = JsonListConstraint(Vocabulary(tok), [AnswerGrammar(p) for p, _ in queries])

    def masked(generated, rows, scores):  # no .options: full logits
        return grammars(generated, rows, scores)

    runs = [greedy_decode(model, enc.input_ids, enc.attention_mask, eos_id=tok.eos_token_id, max_new_tokens=16,
                          processor=p) for p in (grammars, masked)]
    assert [[s.token for s in row] for row in runs[0]] == [[s.token for s in row] for row in runs[1]]
    for a, b in zip(*runs):
        assert [s.logprob for s in a] == pytest.approx([s.logprob for s in b], abs=1e-4)


def test_mentions_the_grammar_forces_are_marked_and_dropped(tiny_model_dir):
    """The tiny model answers "Atlantis" (not in the passage): pushed into a passage string instead,
    that mention is marked forced, and with `drop_forced` the component does not keep it."""
    import spacy

    passage = "Bob Jones flew to Paris with Alice Smith."
    query = Query(passage, "location", "location")
    backend = HFBackend(str(tiny_model_dir), max_new_tokens=24, constrained=True)
    bound = backend([query], mark_forced=True)[0]
    unmarked = backend([query])[0]
    assert unmarked.text == bound.text and unmarked.forced == ()  # marks are opt-in: they cost an output layer
    mentions = parse_answer(bound.text).mentions
    assert mentions[0] == "Paris" and "Paris" not in bound.forced
    assert bound.forced and set(bound.forced) <= set(mentions[1:])
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["location"], "stages": {}, "drop_forced": True, "backend": {
        "@misc": "uniner.HF.v1", "model": str(tiny_model_dir), "max_new_tokens": 24, "constrained": True}})
    doc = nlp(passage)
    assert [e.text for e in doc.ents] == ["Paris"]
    assert doc._.uniner_stats["forced"] == len(bound.forced)
    # in a batch, where rows finish at different steps, each row keeps its own marks
    queries = [Query(p, t, t) for (p, t) in TINY_FACTS] + [Query(passage, "location", "location")]
    one_by_one = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=1, constrained=True)
    alone = [one_by_one([q], mark_forced=True)[0] for q in queries]  # one backend: each vocabulary costs ~0.6 s
    together = HFBackend(str(tiny_model_dir), max_new_tokens=24, batch_size=64, constrained=True)(
        queries, mark_forced=True
    )
    assert [g.forced for g in together] == [g.forced for g in alone]


def test_overruled_means_the_mention_so_far_plus_the_token_is_no_passage_text(vocab):
    from uniner_spacy.backends.hf.grammar import JsonListConstraint

    tok = embedded_tokenizer()
    processor = JsonListConstraint(vocab, [AnswerGrammar("The band plays heavy metal in Berlin.")])
    processor.options([tok(' ["heavy metal', add_special_tokens=False).input_ids], [0])
    token = {w: tok(w, add_special_tokens=False).input_ids[0] for w in (" band", " in", " METAL", '"')}
    assert processor.overrules(0, token[" band"])  # `band` is in the passage, but not after `heavy metal`
    assert not processor.overrules(0, token[" in"])
    assert not processor.overrules(0, token['"'])  # closing early is no hallucination


def test_forced_mentions_are_the_items_holding_a_forced_token():
    from uniner_spacy.questions.parsing import forced_mentions

    pieces = [(' ["', 0.0), ("Par", 0.0), ('is", "', 0.0), ("Ber", 0.0), ("lin", 0.0), ('"]', 0.0)]
    assert forced_mentions(' ["Paris", "Berlin"]', pieces, [False, False, False, False, True, False]) == ("Berlin",)
    assert forced_mentions(' ["Paris", "Berlin"]', pieces, [False] * 6) == ()
