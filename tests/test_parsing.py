import math

import pytest

from uniner_spacy.pipeline.parsing import mention_scores, parse_answer


@pytest.mark.parametrize(
    "raw,mentions,ok,repaired",
    [
        ('["Barack Obama", "Obama"]', ["Barack Obama", "Obama"], True, False),
        (" []", [], True, False),
        ('Sure! Here they are: ["Paris"]', ["Paris"], True, True),
        ('["Paris", "Lon', ["Paris"], True, True),  # truncated mid-string
        ('["Paris", "London"', ["Paris", "London"], True, True),  # list never closed
        ("['Paris', 'New York']", ["Paris", "New York"], True, False),
        ("['O'Brien', 'Dublin']", ["O'Brien", "Dublin"], True, False),
        ('["a [b] c", "d]"]', ["a [b] c", "d]"], True, False),
        ('["X", "X", "X"]', ["X"], True, True),
        ('["say \\"hi\\"", "tab\\tx"]', ['say "hi"', "tab\tx"], True, False),
        ("I think the answer is Paris.", [], False, False),
        ("", [], False, False),
        ('["  ", "ok"]', ["ok"], True, True),
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
