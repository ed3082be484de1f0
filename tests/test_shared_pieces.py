"""The pieces several modules share: each is written once, and every user goes through it."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from training import conversations
from uniner_spacy.backends.openai import OpenAIBackend
from uniner_spacy.distill import teacher
from uniner_spacy.errors import InputError
from uniner_spacy.evaluation import loaders, protocols
from uniner_spacy.pipeline import align
from uniner_spacy.pipeline.component import validate_labels
from uniner_spacy.questions.parsing import closes_outside_words, read_string, scan_list
from uniner_spacy.questions.prompts import LLAMA_EOS, SYSTEM_PARAGRAPH, Template
from uniner_spacy.stages.paraphrases import map_types
from uniner_spacy.types import Query, label_key

# ---------------------------------------------------------------- mention location


def test_gold_loaders_and_teacher_locate_mentions_with_the_pipeline_function():
    assert loaders.find_mentions is align.find_mentions
    assert teacher.find_mentions is align.find_mentions


# ---------------------------------------------------------------- prompt rendering


@pytest.mark.parametrize("template", [Template(), Template(eos="<|im_end|>"),
                                      Template(system=SYSTEM_PARAGRAPH, dataset="CoNLL 2003")])
def test_chat_turns_render_as_the_inference_prompt(template):
    turns = template.chat_turns("Obama visited Paris.", "person")
    assert [m["role"] for m in turns] == ["system", "user", "assistant", "user"]
    assert template.render_chat(turns) == template.render("Obama visited Paris.", "person")
    assert template.render("P", "x").startswith(template.prefix("P"))


def test_render_chat_joins_systems_and_skips_other_roles():
    msgs = [{"role": "system", "content": "S1"}, {"role": "user", "content": "U"},
            {"role": "tool", "content": "ignored"}, {"role": "assistant", "content": "A"},
            {"role": "system", "content": "S2"}, {"role": "user", "content": "Q"}]
    assert Template(eos="<E>").render_chat(msgs) == "S1 S2 USER: U ASSISTANT: A<E>USER: Q ASSISTANT:"
    assert Template().render_chat([]) == "ASSISTANT:"
    assert Template().render_chat([{"role": "system", "content": ""}, {"role": "user", "content": "u"}]) == (
        "USER: u ASSISTANT:")


def test_openai_chat_messages_are_the_template_turns():
    backend = OpenAIBackend("m", system="paragraph", dataset="X", eos="<E>")
    q = Query("Some text.", "person")
    assert backend.messages(q) == backend.template.chat_turns("Some text.", "person")
    assert Template(eos="<E>").render_chat(backend.messages(q)) == backend.template.render("Some text.", "person")
    assert backend.messages(q)[0]["content"] == SYSTEM_PARAGRAPH


def test_openai_type_last_prompts_go_over_completions_only():
    backend = OpenAIBackend("m", eos="<E>", layout="type-last")
    text = backend.template.render("Some text.", "person")
    assert text.endswith("ASSISTANT: person:") and "template=type-last-1" in backend.model_id
    assert "template" not in OpenAIBackend("m", eos="<E>").model_id
    with pytest.raises(ValueError, match="completions endpoint"):
        OpenAIBackend("m", endpoint="chat", layout="type-last")


def test_conversation_answers_are_assistant_turns():
    t = Template()
    text, [(s, e)] = t.render_conversation("P", [("a", '["x"]')])
    assert text == t.render("P", "a") + ' ["x"]' + LLAMA_EOS and text[s:e] == ' ["x"]' + LLAMA_EOS


# ---------------------------------------------------------------- quoted strings


def test_read_string_default_rule_and_escapes():
    lit, end = read_string("'O'Brien', x", 0)
    assert (lit.value, lit.start, lit.end, end) == ("O'Brien", 1, 8, 9)
    lit, _ = read_string('"a\\"b\\u00e9"', 0)
    assert lit.value == 'a"bé'
    assert read_string('"cut off', 0) == (None, 8)
    assert closes_outside_words("'s", 0) is False and closes_outside_words("' ", 0) is True
    assert [x.value for x in scan_list('["a", \'b\']')[0]] == ["a", "b"]


def test_teacher_strings_use_the_same_scanner_with_their_own_closing_rule():
    # a quote closes only before a separator, so inner quotes stay; an unclosed string is truncation
    assert teacher.parse_tuples('[("the "Big Apple"", "nickname")]').pairs == [('the "Big Apple"', "nickname")]
    assert teacher.parse_tuples('[("x\\q", "y")]').pairs == [("xq", "y")]  # lenient escapes
    cut = teacher.parse_tuples('[("Mars", "planet"), ("NASA", "organiz')
    assert cut.pairs == [("Mars", "planet")] and cut.truncated


# ---------------------------------------------------------------- label keys


def test_label_key():
    assert label_key(" Medical_Condition ") == label_key("medical  condition") == "medical condition"
    assert label_key("U.S. state") == "u.s. state"


def test_every_label_comparison_uses_label_key():
    with pytest.raises(ValueError, match="Duplicate label"):
        validate_labels(["medical_condition", "Medical Condition"])
    assert map_types(["Medical_Condition"], ["medical condition"], embedder=object()) == {
        "Medical_Condition": "medical condition"}
    ents = teacher.clean_pairs("Flu is common.", [("Flu", " Medical_Condition. ")], Counter())
    assert ents[0]["type"] == "medical condition"


# ---------------------------------------------------------------- JSONL reading


def _jsonl(path, rows, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")
    return path


def test_jsonl_readers_name_the_bad_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('\n{oops\n{"a": 1}\n', encoding="utf-8")
    for read in (conversations.read_jsonl, teacher.read_batch_results,
                 lambda p: list(loaders.read_slimer(p)), lambda p: list(loaders.read_dygie(p))):
        with pytest.raises(InputError, match=r"bad.jsonl:2: not JSON"):
            read(bad)


def test_jsonl_readers_read_rows(tmp_path):
    conv = conversations.Conversation(passage="T", turns=[("person", '["x"]')])
    conversations.write_jsonl([conv], tmp_path / "c.jsonl")
    assert conversations.read_jsonl(tmp_path / "c.jsonl") == [conv]
    batch = _jsonl(tmp_path / "b.jsonl", [
        {"custom_id": "p1", "response": {"status_code": 200, "body": {
            "choices": [{"message": {"content": "[]"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3}}}},
        {"custom_id": "p2", "error": {"message": "boom"}}], tail="\n")
    answers = teacher.read_batch_results(batch)
    assert answers["p1"].text == "[]" and answers["p1"].usage["prompt_tokens"] == 3 and answers["p2"].error


def test_scoring_reads_predictions_through_jsonl_rows(tmp_path):
    (tmp_path / "gold").mkdir()
    gold = _jsonl(tmp_path / "gold" / "data.jsonl", [
        {"input": "Paris is nice.", "tagName": "location", "output": '["Paris"]'}])
    pred = _jsonl(tmp_path / "pred.jsonl", [{"text": "Paris is nice.", "type": "location", "prediction": ["Paris"]}])
    result = protocols.score_files(gold, pred, gold_format="slimer")
    assert result["string"]["f1"] == 1.0
    assert not hasattr(protocols, "read_jsonl")


def test_training_scripts_read_jsonl_rows(tmp_path):
    from training import annotate, convert, stats

    path = _jsonl(tmp_path / "a.jsonl", [
        {"id": 1, "text": "Ada met Bob.", "entities": [{"type": "person", "spans": [[0, 3], [8, 11]]}]},
        {"id": 2, "text": "x", "error": "failed"}])
    assert annotate.read_passages(path, limit=1) == [("1", "Ada met Bob.")]
    assert stats.type_counts(path) == Counter(person=1)
    [example] = convert.read_annotations(path)
    assert [(e.start, e.end, e.label) for e in example.entities] == [(0, 3, "person"), (8, 11, "person")]


# ---------------------------------------------------------------- token-a-row readers


def test_token_readers_share_one_sentence_buffer(tmp_path):
    bio = tmp_path / "x.txt"
    bio.write_text("-DOCSTART-\tO\n\nAda\tB-PER\nLovelace\tI-PER\n\n\n# id 2\nParis\tB-LOC\n", encoding="utf-8")
    assert [(r.text, r.spans) for r in loaders.read_bio(bio)] == [
        ("Ada Lovelace", [(0, 12, "PER")]), ("Paris", [(0, 5, "LOC")])]
    hipe = tmp_path / "h.tsv"
    hipe.write_text("TOKEN\tNE-COARSE-LIT\tMISC\n# doc\nA\tB-loc\tEndOfSentence\nB\tO\t_\n", encoding="utf-8")
    assert [(r.text, r.spans) for r in loaders.read_hipe(hipe)] == [("A", [(0, 1, "loc")]), ("B", [])]
    finer = tmp_path / "f.csv"
    finer.write_text("gold_token,gold_label,doc_idx,sent_idx\nA,1,0,0\nB,0,0,0\nC,3,0,1\n", encoding="utf-8")
    assert [(r.text, r.spans) for r in loaders.read_finer_csv(finer)] == [
        ("A B", [(0, 1, "PER")]), ("C", [(0, 1, "LOC")])]


# ---------------------------------------------------------------- names


def test_the_official_answer_reader_has_its_own_name():
    import uniner_spacy.evaluation as evaluation

    assert evaluation.official_answer_items('["a"]') == (["a"], True)
    assert not hasattr(evaluation, "parse_answer")
