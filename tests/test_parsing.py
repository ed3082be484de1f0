import math

import pytest

from uniner_spacy.questions.parsing import MAX_MENTIONS, mention_scores, parse_answer


@pytest.mark.parametrize(
    "raw,mentions,ok,repaired",
    [
        ('["Barack Obama", "Obama"]', ["Barack Obama", "Obama"], True, False),
        (" []", [], True, False),
        ('Sure! Here they are: ["Paris"]', ["Paris"], True, False),  # prose before the list loses nothing
        ('["Paris", "Lon', ["Paris"], True, True),  # truncated mid-string
        ('["Paris", "London"', ["Paris", "London"], True, True),  # list never closed
        ("['Paris', 'New York']", ["Paris", "New York"], True, False),
        ("['O'Brien', 'Dublin']", ["O'Brien", "Dublin"], True, False),
        ('["a [b] c", "d]"]', ["a [b] c", "d]"], True, False),
        ('["X", "X", "X"]', ["X"], True, False),
        ('["say \\"hi\\"", "tab\\tx"]', ['say "hi"', "tab\tx"], True, False),
        ("I think the answer is Paris.", [], False, False),
        ("", [], False, False),
        ('["  ", "ok"]', ["ok"], True, False),
        # only the list's own strings are mentions; an answer of nothing else is unread, not "none"
        ('[{"name": "X"}]', [], False, False),
        ('["Paris", {"name": "X"}, "Rome"]', ["Paris", "Rome"], True, False),
        ('[["Paris"], "Rome"]', ["Rome"], True, False),
        ('[{"a": "]"}, "ok"]', ["ok"], True, False),
        ("[null]", [], False, False),
        ("[1990]", [], False, False),  # numbers are not strings, as before: no mention
        ('[1990, "Paris"]', ["Paris"], True, False),
        ("[Paris, London]", [], False, False),  # unquoted words were read as "no mentions"
        ('[{"name": "X', [], False, False),
    ],
)
def test_parse_answer(raw, mentions, ok, repaired):
    p = parse_answer(raw)
    assert p.mentions == mentions
    assert p.ok is ok
    assert p.repaired is repaired


def test_mention_scores_from_token_logprobs():
    raw = ' ["Paris", "Rome"]'
    pieces = [(' ["', 0.0), ("Par", math.log(0.5)), ("is", math.log(0.5)), ('", "', 0.0), ("Rome", math.log(0.9)),
              ('"]', 0.0)]
    scores = mention_scores(raw, pieces, ["Paris", "Rome"])
    assert scores[0] == pytest.approx(0.5)
    assert scores[1] == pytest.approx(0.9)
    assert mention_scores(raw, None, ["Paris"]) is None


def test_answers_are_capped_and_the_rest_counts_as_cut_off():
    many = parse_answer("[" + ", ".join(f'"m{i}"' for i in range(MAX_MENTIONS + 5)) + "]")
    assert many.mentions == [f"m{i}" for i in range(MAX_MENTIONS)] and many.ok and many.repaired
    exact = parse_answer("[" + ", ".join(f'"m{i}"' for i in range(MAX_MENTIONS)) + ', "m0"]')
    assert len(exact.mentions) == MAX_MENTIONS and not exact.repaired  # repeats do not count
