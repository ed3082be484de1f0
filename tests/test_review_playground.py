"""The playground page in a real headless Chromium (Debian's `chromium`), served on 127.0.0.1: the page
loads, a person types a text and three labels and sees the expected entities, one colour per label,
scores and runners-up on hover; a long text and an empty label list get clear messages. The fast test
runs the canned backend; the slow one the embedded student, and it draws the docs' screenshot
(UNINER_UPDATE_SCREENSHOTS=1 writes it to docs/playground.png)."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest
from browser import CHROMIUM, Chromium
from conftest import REPO, canned

from uniner_spacy.errors import InputError
from uniner_spacy.palette import PALETTE, label_colors
from uniner_spacy.playground import Playground, parse_label_lines, serve_playground

TEXT = "Alice Smith works for Acme Corp in Berlin."
LABELS = "person\norganization: a company or an institution\nlocation"
needs_browser = pytest.mark.skipif(not CHROMIUM, reason="no chromium on PATH: apt-get install chromium")


def _canned_playground(**settings) -> Playground:
    # `Berlin` is answered for organization too: it loses to location and is its runner-up
    answers = {"person": ["Alice Smith", "Bob Jones"], "organization": ["Acme Corp", "Berlin"],
               "location": ["Berlin", "Paris"]}
    return Playground.build(backend=canned(answers=answers), **settings)


@pytest.fixture
def page_server():
    server = serve_playground(_canned_playground(max_chars=500), port=0)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser():
    chromium = Chromium()
    yield chromium
    chromium.close()


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _marks(browser):
    return browser.evaluate("[...document.querySelectorAll('mark.ent')].map(m => ({text: m.firstChild.textContent, "
                            "label: m.dataset.label, score: m.querySelector('.score').textContent, "
                            "background: getComputedStyle(m).backgroundColor}))")


def _ask(browser, text: str, labels: str) -> None:
    browser.type_into("text", text)
    browser.type_into("labels", labels)
    browser.evaluate("document.body.dataset.state = ''")
    browser.click("#run")
    browser.wait_for("document.body.dataset.state === 'done'", timeout=300)


def test_palette_gives_distinct_stable_colours():
    colours = label_colors(["person", "organization", "location"])
    assert len(set(colours.values())) == 3  # the displaCy default greys every label but person
    assert label_colors(["location", "person"])["person"] == colours["person"]  # a label keeps its colour
    many = label_colors([f"type {i}" for i in range(len(PALETTE))])
    assert len(set(many.values())) == len(PALETTE)


def test_extract_checks_its_input():
    page = _canned_playground(max_chars=100)
    result = page.extract(TEXT, parse_label_lines(LABELS))
    assert [(e["text"], e["label"]) for e in result["entities"]] == [
        ("Alice Smith", "person"), ("Acme Corp", "organization"), ("Berlin", "location")]
    berlin = result["entities"][2]
    assert [(r["label"], r["text"]) for r in berlin["runners_up"]] == [("organization", "Berlin")]
    assert result["labels"] == ["person", "organization", "location"] and result["seconds"] >= 0
    with pytest.raises(InputError, match="Name at least one label"):
        page.extract(TEXT, [])
    with pytest.raises(InputError, match="101 characters; the playground takes up to 100"):
        page.extract("x" * 101, ["person"])


def test_api_answers_errors_as_json(page_server):
    request = urllib.request.Request(page_server.url + "/api/extract", method="POST",
                                     data=json.dumps({"text": TEXT, "labels": []}).encode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400 and "Name at least one label" in json.loads(err.value.read())["error"]


@needs_browser
def test_page_in_chromium(page_server, browser, tmp_path):
    browser.open(page_server.url)
    assert browser.evaluate("document.title") == "uniner-spacy playground"

    _ask(browser, TEXT, LABELS)
    marks = _marks(browser)
    assert [(m["text"], m["label"]) for m in marks] == [
        ("Alice Smith", "person"), ("Acme Corp", "organization"), ("Berlin", "location")]
    colours = label_colors(["person", "organization", "location"])
    assert [m["background"] for m in marks] == [_rgb(colours[m["label"]]) for m in marks]
    assert len({m["background"] for m in marks}) == 3  # one distinct colour per label
    assert all(m["score"] not in ("", "–") for m in marks)
    assert "entities in" in browser.evaluate("document.getElementById('time').textContent")
    # the runners-up show on hover, and only then
    runners = "getComputedStyle(document.querySelectorAll('mark.ent .runners')[2]).display"
    assert browser.evaluate(runners) == "none"
    browser.hover("mark.ent[data-label=location]")
    assert browser.evaluate(runners) == "block"
    assert "organization" in browser.evaluate("document.querySelectorAll('mark.ent .runners')[2].textContent")
    (tmp_path / "playground.png").write_bytes(browser.screenshot())

    _ask(browser, "A long text. " * 50, "person")
    message = browser.evaluate("document.getElementById('message').textContent")
    assert "650 characters; the playground takes up to 500" in message and not _marks(browser)

    _ask(browser, TEXT, "")
    assert "Name at least one label" in browser.evaluate("document.getElementById('message').textContent")
    assert not _marks(browser)  # the old entities are gone: no stale answer under a new question


@pytest.mark.slow
@needs_browser
def test_page_with_the_embedded_student(browser):
    server = serve_playground(Playground.build(), port=0)
    try:
        browser.open(server.url)
        _ask(browser, "Marie Curie was born in Warsaw and worked at the University of Paris.",
             "person\nlocation: a city or a country\norganization")
        found = {(m["text"], m["label"]) for m in _marks(browser)}
        assert ("Marie Curie", "person") in found and ("Warsaw", "location") in found
        # the picture: a sentence whose names the model hesitates over, the runners-up of one on hover
        _ask(browser, "Jordan scored 30 points as Chicago beat Boston at the United Center.",
             "person\nsports team: a club or a franchise\nlocation")
        with_runners = browser.evaluate("[...document.querySelectorAll('mark.ent')].findIndex(m => "
                                        "m.querySelector('.runners').textContent.startsWith('runners-up'))")
        browser.hover(f"mark.ent:nth-of-type({max(0, with_runners) + 1})")
        assert "entities in" in browser.evaluate("document.getElementById('time').textContent")
        shot = browser.screenshot()
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("UNINER_UPDATE_SCREENSHOTS"):
            (REPO / "docs" / "playground.png").write_bytes(shot)
    finally:
        server.shutdown()
        server.server_close()
