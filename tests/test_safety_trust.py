"""What a pipeline, config, rules file or adapter folder from someone else can reach (docs/security.md).

One test per finding of issue 36's "what a pipeline or config from someone else can do": a real
HTTP listener on 127.0.0.1 that records what it is sent, real spaCy pipelines saved and loaded, real
files, links and FIFOs."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import spacy
from conftest import canned

from uniner_spacy.backends.cache import AnswerCache
from uniner_spacy.errors import CacheError, TrustError, UninerError
from uniner_spacy.stages.rules import Rules, RuleTimeout
from uniner_spacy.trust import ALLOWED_HOSTS_ENV, ALLOWED_ROOTS_ENV, MAX_DATA_BYTES

SECRET = "s3cr3t-AKIA-value-that-must-stay-home"
TEXT = "Alice Smith works for Acme Corp in Berlin."


@pytest.fixture(autouse=True)
def _no_opt_ins(monkeypatch):
    for name in (ALLOWED_HOSTS_ENV, ALLOWED_ROOTS_ENV, "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- secrets and hosts


class Listener:
    """An OpenAI-compatible completions endpoint on 127.0.0.1 that records each request's headers and
    body and answers an empty list; at most `limit` requests, each answered at once."""

    def __init__(self, limit: int = 50):
        self.seen: list = []
        self.limit = limit
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if len(listener.seen) < listener.limit:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    listener.seen.append((headers, body.decode("utf8", "replace")))
                reply = json.dumps({"id": "x", "object": "text_completion", "created": 0, "model": "m",
                                    "choices": [{"text": "[]", "index": 0, "finish_reason": "stop",
                                                 "logprobs": None}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _saved_openai_pipeline(tmp_path: Path, url: str) -> Path:
    """A pipeline as someone else would hand it over: its config sends to their host, with the key in
    an environment variable of their choosing."""
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person"], "stages": {}, "backend": {
        "@misc": "uniner.OpenAI.v1", "model": "m", "base_url": url, "api_key_env": "AWS_SECRET_ACCESS_KEY",
        "max_retries": 0, "timeout": 10.0, "logprobs": False}})
    nlp.to_disk(tmp_path / "theirs")
    return tmp_path / "theirs"


def test_a_loaded_pipelines_base_url_gets_no_secret_from_the_environment(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with Listener() as listener:
        nlp = spacy.load(_saved_openai_pipeline(tmp_path, listener.url))
        with caplog.at_level(logging.WARNING):
            doc = nlp(TEXT)
    assert listener.seen, "the pipeline's own server is still asked (that is what the pipeline is)"
    assert doc._.uniner_stats["errors"] == []
    for headers, body in listener.seen:
        assert SECRET not in json.dumps(headers) and SECRET not in body
        assert headers.get("authorization") == "Bearer EMPTY"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("$AWS_SECRET_ACCESS_KEY was not sent" in w and ALLOWED_HOSTS_ENV in w for w in warnings)


def test_the_user_may_allow_a_host_for_the_secret(tmp_path, monkeypatch):
    """The opt-in lives in the user's environment, never in the config: listed there, the key goes."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with Listener() as listener:
        monkeypatch.setenv(ALLOWED_HOSTS_ENV, f"example.org, 127.0.0.1:{listener.port}")
        spacy.load(_saved_openai_pipeline(tmp_path, listener.url))(TEXT)
    assert listener.seen and all(h.get("authorization") == f"Bearer {SECRET}" for h, _ in listener.seen)


# ---------------------------------------------------------------- files a rules file names


def _rules_folder(tmp_path: Path, file: str) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "r.yaml").write_text(f"gazetteers:\n  - label: location\n    file: {json.dumps(file)}\n")
    return folder / "r.yaml"


@pytest.mark.parametrize("how", ["relative", "absolute", "link"])
def test_a_gazetteer_file_outside_the_rules_folder_is_not_read(tmp_path, how):
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    if how == "link":
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "places.txt").symlink_to(secret)
    name = {"relative": "../secret.txt", "absolute": str(secret), "link": "places.txt"}[how]
    nlp = spacy.blank("en")
    with pytest.raises(TrustError, match="outside") as info:
        nlp.add_pipe("uniner", config={"labels": ["location"], "backend": canned(), "stages": {
            "rules": {"@misc": "uniner.Rules.v1", "path": str(_rules_folder(tmp_path, name))}}})
    assert isinstance(info.value, UninerError) and SECRET not in str(info.value)


def test_an_allowed_root_lets_a_gazetteer_file_be_read(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "places.txt").write_text("Berlin\n")
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, str(shared))
    rules = Rules.from_path(_rules_folder(tmp_path, str(shared / "places.txt")))
    assert rules.gazetteers[0].entries == ["Berlin"]


def test_a_saved_pipelines_rules_cannot_read_outside_its_folder(tmp_path):
    """rules.json in a saved pipeline is a rules file too: its gazetteer `file:` stays in the folder."""
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["location"], "backend": canned(),
                                   "stages": {"rules": {"@misc": "uniner.Rules.v1", "path": "default"}}})
    nlp.to_disk(tmp_path / "saved")
    saved = tmp_path / "saved" / "uniner" / "stages" / "rules" / "rules.json"
    data = json.loads(saved.read_text())
    data["gazetteers"] = [{"label": "location", "file": str(secret)}]
    saved.write_text(json.dumps(data))
    with pytest.raises(TrustError, match="outside"):
        spacy.load(tmp_path / "saved")


def _raised_within(seconds: float, fn, fifo: Path):
    """What `fn` raised, failing the test if it still runs after `seconds` (then a writer is opened on
    `fifo`, so that a read waiting on it ends and the test does not hang)."""
    result: dict = {}

    def run():
        try:
            fn()
            result["error"] = None
        except Exception as err:  # noqa: BLE001 - the test inspects it
            result["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():  # today's code waits for a writer: give it one, so the test ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(seconds)
        pytest.fail(f"reading the FIFO {fifo.name} hung")
    return result["error"]


def test_a_fifo_as_gazetteer_file_is_refused_without_hanging(tmp_path):
    rules = _rules_folder(tmp_path, "places.txt")
    os.mkfifo(rules.parent / "places.txt")
    error = _raised_within(5, lambda: Rules.from_path(rules), rules.parent / "places.txt")
    assert isinstance(error, TrustError) and "not a regular file" in str(error)


def test_a_fifo_a_config_names_as_calibration_is_refused_without_hanging(tmp_path):
    from uniner_spacy.pipeline.calibration import Calibrator

    fifo = tmp_path / "calibration.json"
    os.mkfifo(fifo)
    error = _raised_within(5, lambda: Calibrator.from_disk(fifo), fifo)
    assert isinstance(error, TrustError) and "not a regular file" in str(error)


def test_a_gazetteer_file_over_the_size_cap_is_refused(tmp_path):
    rules = _rules_folder(tmp_path, "places.txt")
    with (rules.parent / "places.txt").open("wb") as fh:
        fh.truncate(MAX_DATA_BYTES + 1)  # sparse: no disk used
    with pytest.raises(TrustError, match="limit"):
        Rules.from_path(rules)


# ---------------------------------------------------------------- adapters in saved pipelines


def _hf_pipeline(adapter=None) -> spacy.language.Language:
    """A pipeline with the HF backend; nothing here loads the model (it loads at first use)."""
    nlp = spacy.blank("en")
    backend = {"@misc": "uniner.HF.v1", "model": "embedded"}
    if adapter is not None:
        backend["adapter"] = str(adapter)
    nlp.add_pipe("uniner", config={"labels": ["person"], "backend": backend, "stages": {}})
    return nlp


@pytest.mark.parametrize("named", ["absolute", "parent"])
def test_backend_json_may_not_name_an_adapter_outside_the_saved_folder(tmp_path, named):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "adapter_config.json").write_text("{}")
    _hf_pipeline().to_disk(tmp_path / "saved")
    backend_json = tmp_path / "saved" / "uniner" / "backend" / "backend.json"
    info = json.loads(backend_json.read_text())
    info["adapter"] = str(elsewhere) if named == "absolute" else "../../../elsewhere"
    backend_json.write_text(json.dumps(info))
    with pytest.raises(TrustError, match="outside"):
        spacy.load(tmp_path / "saved")


def _adapter(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 2}')
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def test_to_disk_does_not_copy_a_linked_file_from_outside_the_adapter(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    adapter = _adapter(tmp_path / "adapter")
    (adapter / "notes.txt").symlink_to(secret)
    with pytest.raises(TrustError, match="outside"):
        _hf_pipeline(adapter).to_disk(tmp_path / "saved")
    copied = [p for p in (tmp_path / "saved").rglob("*") if p.is_file()]
    assert all(SECRET not in p.read_text(errors="replace") for p in copied)


def test_to_disk_copies_an_adapter_whose_links_stay_inside(tmp_path):
    adapter = _adapter(tmp_path / "adapter")
    (adapter / "weights.link").symlink_to(adapter / "adapter_model.safetensors")
    _hf_pipeline(adapter).to_disk(tmp_path / "saved")
    saved = tmp_path / "saved" / "uniner" / "backend" / "adapter"
    assert (saved / "weights.link").read_bytes() == b"weights" and not (saved / "weights.link").is_symlink()
    nlp = spacy.load(tmp_path / "saved")
    assert Path(nlp.get_pipe("uniner").backend.adapter) == saved.resolve()


def test_a_fifo_in_a_saved_adapter_is_refused(tmp_path):
    adapter = _adapter(tmp_path / "adapter")
    _hf_pipeline(adapter).to_disk(tmp_path / "saved")
    os.mkfifo(tmp_path / "saved" / "uniner" / "backend" / "adapter" / "extra.bin")
    with pytest.raises(TrustError, match="not a regular file"):
        spacy.load(tmp_path / "saved")


# ---------------------------------------------------------------- the answer cache


def test_the_cache_never_renames_a_file_it_did_not_create(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a database\n" * 20)
    before = notes.read_bytes()
    with pytest.raises(CacheError, match="not a SQLite database") as info:
        AnswerCache(notes)
    assert isinstance(info.value, UninerError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"] and notes.read_bytes() == before


# ---------------------------------------------------------------- regexes in Matcher patterns


def test_a_matcher_regex_runs_under_the_time_limit(tmp_path):
    """`^(a|aa)+$` on a 38-character token took 7.6 s through spaCy's `re`; here it stops at the limit,
    recorded on that doc like any rule regex that runs out of time."""
    (tmp_path / "r.yaml").write_text(json.dumps({"filters": {"labels": {"thing": {
        "patterns": [[{"TEXT": {"REGEX": "^(a|aa)+$"}}]]}}}}))
    token = "a" * 37 + "b"
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["thing"], "backend": canned(answers={"thing": [token]}),
                                   "stages": {"rules": {"@misc": "uniner.Rules.v1", "path": str(tmp_path / "r.yaml")}}})
    start = time.perf_counter()
    doc = nlp(f"See {token} here.")
    elapsed = time.perf_counter() - start
    errors = doc._.uniner_stats["errors"]
    assert any("took over" in e and "(a|aa)" in e for e in errors), errors
    assert elapsed < 5.0  # the limit is 0.25 s per search; today's code took 7.6 s
    with pytest.raises(RuleTimeout):
        nlp.get_pipe("uniner").stages["rules"].keep(doc, _candidate(doc, token, "thing"))


def test_matcher_regexes_still_match_as_spacys_do():
    """Taken out of the pattern, a REGEX keeps its meaning, beside the token's other predicates."""
    rules = Rules({"filters": {"labels": {"code": {
        "patterns": [[{"TEXT": {"REGEX": r"^[A-Z]{2}\d+$"}}]],
        "exclude_patterns": [[{"LOWER": {"REGEX": "^x", "NOT_IN": ["xy9"]}}]]}}}})
    doc = spacy.blank("en")("AB12 ab12 XY9 XZ9")
    kept = [doc.text[c.start:c.end] for c in rules(doc, [_candidate(doc, t.text, "code") for t in doc])]
    assert kept == ["AB12", "XY9"]


@pytest.mark.parametrize("pattern", [
    [{"TEXT": {"REGEX": {"IN": ["^(a|aa)+$"]}}}],  # regexes inside REGEX: spaCy would run them with `re`
    [{"TEXT": {"FUZZY": {"REGEX": "^(a|aa)+$"}}}],
])
def test_a_regex_the_guard_cannot_take_is_refused(pattern):
    with pytest.raises(UninerError, match="REGEX"):
        Rules({"filters": {"labels": {"x": {"patterns": [pattern]}}}})


def _candidate(doc, text, label):
    from uniner_spacy.types import Candidate

    start = doc.text.index(text)
    return Candidate(start, start + len(text), label, 1.0)
