import spacy

from uniner_spacy.pipeline.align import align_mention, find_mentions, token_bounds_in

nlp = spacy.blank("en")


def bounds(text):
    return [(t.idx, t.idx + len(t)) for t in nlp(text)]


def test_all_occurrences_exact():
    text = "Paris is big. I love Paris."
    assert [(m.start, m.end, m.kind) for m in align_mention("Paris", text, bounds(text))] == [
        (0, 5, "exact"), (21, 26, "exact")
    ]


def test_never_inside_a_word():
    text = "We start the art show."
    assert [(m.start, m.end) for m in align_mention("art", text, bounds(text))] == [(13, 16)]
    assert align_mention("tar", text, bounds(text), fuzzy_threshold=0) == []


def test_case_insensitive_then_fuzzy():
    text = "The new york times reported on classifier s ."
    m = align_mention("New York Times", text, bounds(text))
    assert [(x.start, x.end, x.kind) for x in m] == [(4, 18, "case")]
    m = align_mention("classifiers", text, bounds(text))
    assert [(text[x.start:x.end], x.kind) for x in m] == [("classifier s", "fuzzy")]


def test_unalignable_is_empty():
    text = "Nothing to see here."
    assert align_mention("Barack Obama", text, bounds(text)) == []
    assert align_mention("", text, bounds(text)) == []


def test_token_bounds_in_passage():
    text = "One two. Three four."
    b = bounds(text)
    assert token_bounds_in(b, 9, 20) == [(0, 5), (6, 10), (10, 11)]


def test_find_mentions_prefers_word_boundaries():
    text = "Art starts at the art museum; ART."
    assert find_mentions(text, "art") == [(18, 21)]
    assert find_mentions(text, "ART") == [(30, 33)]
    assert find_mentions("restart", "art") == [(4, 7)]  # no bounded match: any match
    assert find_mentions("Big Apple", "big apple") == [(0, 9)]
    assert find_mentions("text", "missing") == []
    assert find_mentions("text", "  ") == []


def test_find_mentions_and_align_share_the_scan_but_not_the_overlap_rule():
    text = "a a a"
    # gold strings: occurrences never overlap; the pipe: every token-boundary occurrence
    assert find_mentions(text, "a a") == [(0, 3)]
    assert [(m.start, m.end) for m in align_mention("a a", text, bounds(text))] == [(0, 3), (2, 5)]


def test_case_pass_only_where_lower_casing_keeps_offsets():
    # `İ`.lower() is `i` + a combining dot, one character longer: no case-insensitive pass
    text = "i\u0307stanbul"
    assert "İstanbul".lower() == text and find_mentions(text, "İstanbul") == []
    assert [m.kind for m in align_mention("İstanbul", text, bounds(text))] == ["fuzzy"]
    assert find_mentions("ISTANBUL", "istanbul") == [(0, 8)]
