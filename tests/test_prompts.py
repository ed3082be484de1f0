import pytest

from uniner_spacy.questions.prompts import (
    LAYOUT_FILE,
    SYSTEM_PARAGRAPH,
    TEMPLATE_VERSION,
    Template,
    adapter_layout,
    question,
    teacher_messages,
    write_layout,
)

GOLDEN = (
    "A virtual assistant answers questions from a user based on the provided text. "
    "USER: Text: {passage} ASSISTANT: I've read this text.</s>"
    "USER: What describes {entity_type} in the text? ASSISTANT:"
)


def test_inference_prompt_matches_uniner_md():
    t = Template()
    assert t.render("Obama visited Paris.", "person") == GOLDEN.format(
        passage="Obama visited Paris.", entity_type="person"
    )


def test_model_eos_replaces_llama_eos():
    prompt = Template(eos="<|im_end|>").render("P", "location")
    assert "I've read this text.<|im_end|>USER:" in prompt
    assert "</s>" not in prompt


def test_paragraph_and_dataset_variants():
    t = Template(system=SYSTEM_PARAGRAPH, dataset="CoNLL 2003")
    assert t.render("P", "x").startswith(
        "A virtual assistant answers questions from a user based on the provided paragraph. "
        "USER: Dataset: CoNLL 2003 Text: P ASSISTANT:"
    )


def test_label_set_prompt_shows_the_types_before_the_passage():
    t = Template(eos="<E>")
    prompt = t.render("P", "writer", ("person", "writer"))
    assert prompt == GOLDEN.format(passage="P", entity_type="writer").replace(
        "USER: Text: P", "USER: Entity types: person, writer. Text: P").replace("</s>", "<E>")
    start, end = t.passage_span("Obama.", ("person",))
    assert t.prefix("Obama.", ("person",))[start:end] == "Obama."
    assert t.render("P", "x", ()) == t.render("P", "x")  # none shown: UniNER's own prompt
    assert Template(dataset="D").first_user_turn("P", ["a"]) == "Dataset: D Entity types: a. Text: P"
    text, targets = t.render_conversation("P", [("a", "[]")], ["a", "b"])
    assert text.startswith(t.prefix("P", ["a", "b"])) and text[targets[0][0]:] == " []<E>"
    assert t.chat_turns("P", "a", ["a"])[1]["content"] == "Entity types: a. Text: P"


def test_conversation_targets_cover_answers_and_eos():
    text, targets = Template(eos="<E>").render_conversation("P", [("a", '["x"]'), ("b", "[]")])
    assert [text[s:e] for s, e in targets] == [' ["x"]<E>', " []<E>"]
    assert text.endswith('USER: What describes b in the text? ASSISTANT: []<E>')


def test_type_last_layout_ends_the_prompt_at_the_type():
    """The question's fixed words join the shared prefix; the type opens the assistant's turn."""
    t, u = Template(eos="<E>", layout="type-last"), Template(eos="<E>")
    assert t.prefix("P") == u.prefix("P") and t.version != u.version == TEMPLATE_VERSION
    assert t.render("P", "musical instrument") == (
        u.prefix("P") + "USER: What describes this type in the text? ASSISTANT: musical instrument:")
    text, targets = t.render_conversation("P", [("a", '["x"]'), ("b", "[]")])
    assert [text[s:e] for s, e in targets] == [' ["x"]<E>', " []<E>"]
    assert text == t.render("P", "a") + ' ["x"]<E>' + t.question_turn("b") + " []<E>"
    with pytest.raises(ValueError, match="completions endpoint"):
        t.chat_turns("P", "a")
    with pytest.raises(ValueError, match="layout must be one of"):
        Template(layout="type-first")


def test_an_adapter_folder_records_its_layout(tmp_path):
    assert adapter_layout(tmp_path) == adapter_layout(None) == "uniner"
    write_layout(tmp_path, "type-last")
    assert adapter_layout(tmp_path) == "type-last"
    write_layout(tmp_path, "uniner")  # UniNER's own is what no file means
    assert not (tmp_path / LAYOUT_FILE).exists()
    (tmp_path / LAYOUT_FILE).write_text('{"layout": "sideways"}')
    with pytest.raises(ValueError, match="sideways"):
        adapter_layout(tmp_path)


def test_definition_questions():
    assert question("person", "A human being.", "definition") == "What describes A human being in the text?"
    assert question("person", "A human being.", "both") == "What describes person (A human being) in the text?"
    assert question("person", None, "definition") == "What describes person in the text?"


def test_teacher_prompt_is_exact():
    msgs = teacher_messages("Some passage.")
    assert msgs[0] == {"role": "system", "content": "You are a helpful information extraction system."}
    assert msgs[1]["content"] == (
        "Given a passage, your task is to extract all entities and identify their entity types. "
        'The output should be in a list of tuples of the following format: [("entity 1", "type of '
        'entity 1"), ...]. Passage: Some passage.'
    )
