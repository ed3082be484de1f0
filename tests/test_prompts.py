from uniner_spacy.pipeline.prompts import SYSTEM_PARAGRAPH, Template, question, teacher_messages

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


def test_conversation_targets_cover_answers_and_eos():
    text, targets = Template(eos="<E>").render_conversation("P", [("a", '["x"]'), ("b", "[]")])
    assert [text[s:e] for s, e in targets] == [' ["x"]<E>', " []<E>"]
    assert text.endswith('USER: What describes b in the text? ASSISTANT: []<E>')


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
