"""Teacher annotation: the tolerant tuple parser, cleaning, and the client against real HTTP servers."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from training import annotate
from uniner_spacy.backends.cache import TABLE
from uniner_spacy.distill.teacher import TeacherCache, clean_pairs, parse_tuples, read_batch_results
from uniner_spacy.questions.prompts import teacher_messages

# ---------------------------------------------------------------- parser


@pytest.mark.parametrize(
    "answer, pairs",
    [
        ('[("Barack Obama", "person"), ("Hawaii", "location")]', [("Barack Obama", "person"), ("Hawaii", "location")]),
        ('[["Paris", "city"], ["France", "country"]]', [("Paris", "city"), ("France", "country")]),
        ("[('O'Brien', 'person'), ('Dublin', 'city')]", [("O'Brien", "person"), ("Dublin", "city")]),
        ('[("the "Big Apple"", "nickname")]', [('the "Big Apple"', "nickname")]),
        ('[("say \\"hi\\"", "phrase")]', [('say "hi"', "phrase")]),
        ('Sure! Here they are:\n[("IBM", "organization")]\nHope this helps.', [("IBM", "organization")]),
        ('[("Mars", "planet"), ("NASA", "organiz', [("Mars", "planet")]),  # cut inside a string
        ('[("Mars", "planet"), ("NASA", "organization"', [("Mars", "planet"), ("NASA", "organization")]),
        ('[["Serena", "type of entity 1", "type of entity 1", "ty', [("Serena", "type of entity 1")]),
        ("[(Paris, city)]", [("Paris", "city")]),
        ('[("Rust (language)", "programming language")]', [("Rust (language)", "programming language")]),
        ('[("a", "b", "c")]', [("a", "b")]),
        ("[]", []),
        ("no list here", []),
    ],
)
def test_parse_tuples(answer, pairs):
    assert parse_tuples(answer).pairs == pairs


def test_parse_counts_what_it_forgives():
    res = parse_tuples('[("Mars", "planet"), ("alone",), "stray", ("NASA", "org')
    assert res.pairs == [("Mars", "planet")]
    assert res.truncated and res.malformed == 3
    assert parse_tuples('["just", "strings"]').malformed == 2
    assert not parse_tuples("nothing").found_list
    assert parse_tuples('[("a", "b", "c")]').extra_fields == 1


def test_clean_pairs_drops_and_counts():
    passage = "Ada Lovelace worked with Charles Babbage in London. Ada wrote notes."
    dropped = Counter()
    ents = clean_pairs(passage, [
        ("Ada Lovelace", "Person"), ("ada lovelace", "person"),  # duplicate after locating
        ("Ada", "person"), ("Paris", "city"), ("", "x"), ("London", ""),
        ("London", "a very long type name with many words"), ("London", "x" * 60), ("Charles  Babbage", "person"),
    ], dropped)
    assert [(e["mention"], e["type"]) for e in ents] == [
        ("Ada Lovelace", "person"), ("Ada", "person"), ("Charles Babbage", "person")]
    assert dropped == Counter(duplicate=1, not_in_passage=1, empty_mention=1, empty_type=1, long_type=2)
    ada = ents[1]
    assert ada["spans"] == [[0, 3], [52, 55]]  # every word-bounded occurrence
    assert all(passage[s:e] == m["mention"] for m in ents for s, e in m["spans"])


def test_cache_key_covers_server_model_messages_settings(tmp_path):
    msgs = teacher_messages("Some passage.")
    url = "http://127.0.0.1:8000/v1"
    k = TeacherCache.request_key(url, "m", msgs, {"temperature": 0.0})
    assert k != TeacherCache.request_key("http://127.0.0.1:8001/v1", "m", msgs, {"temperature": 0.0})
    assert k != TeacherCache.request_key(url, "m2", msgs, {"temperature": 0.0})
    assert k != TeacherCache.request_key(url, "m", teacher_messages("Some passage.", definition=True),
                                         {"temperature": 0.0})
    assert k != TeacherCache.request_key(url, "m", msgs, {"temperature": 0.5})
    cache = TeacherCache(tmp_path / "c.sqlite")
    cache.put(k, {"text": "[]"})
    assert cache.get(k) == {"text": "[]"}
    cache.conn.execute(f"UPDATE {TABLE} SET value = ? WHERE key = ?", ('{"text": "tampered"}', k))
    assert cache.get(k) is None and cache.corrupt_rows == 1


# ---------------------------------------------------------------- a real HTTP teacher

PASSAGES = {
    "good": "Alice Smith works for Acme Corp in Berlin.",
    "bad": "Bob Jones flew to Paris.",
    "busy": "Marie Curie was born in Warsaw.",
    "hang": "The Nile flows through Cairo.",
}
ANSWERS = {
    "good": '[("Alice Smith", "person"), ("Acme Corp", "organization"), ("Berlin", "city"), ("Tokyo", "city")]',
    "bad": 'Entities: [("Bob Jones", "person"), (Paris, location), ("Bob Jones" "person"), '
           '("Paris", "a place where people live and work"',
    "busy": "[['Marie Curie', 'person'], ['Warsaw', 'city']]",
    "hang": '[("Nile", "river"), ("Cairo", "city")]',
}


class FakeTeacher(ThreadingHTTPServer):
    """An OpenAI-compatible chat endpoint with scripted failures, counting requests per passage."""

    daemon_threads = True

    def __init__(self, busy_first: int = 1, hang: bool = True):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen = Counter()
        self.busy_left = busy_first
        self.hang = hang
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeTeacher

    def log_message(self, *args):
        pass

    def _send(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert req["temperature"] == 0.0
        user = req["messages"][1]["content"]
        name = next(k for k, v in PASSAGES.items() if user.endswith("Passage: " + v))
        assert req["messages"] == teacher_messages(PASSAGES[name])
        with self.server.lock:
            self.server.seen[name] += 1
            busy = name == "busy" and self.server.busy_left > 0
            if busy:
                self.server.busy_left -= 1
        if busy:
            self._send(429, {"error": {"message": "slow down"}}, [("retry-after-ms", "10")])
            return
        if name == "hang" and self.server.hang:
            time.sleep(3)
            return
        self._send(200, {
            "id": "x", "object": "chat.completion", "created": 0, "model": req["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWERS[name]},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        })


def _write_passages(path):
    with path.open("w") as fh:
        for name, text in PASSAGES.items():
            fh.write(json.dumps({"id": name, "text": text}) + "\n")


def _run(tmp_path, url, *extra):
    argv = [str(tmp_path / "passages.jsonl"), "--out", str(tmp_path / "ann.jsonl"), "--model", "teacher-x",
            "--base-url", url, "--cache", str(tmp_path / "cache.sqlite"), "--workers", "4", "--timeout", "1",
            "--max-retries", "1", "--price-in", "0.5", "--price-out", "1.5", "--no-progress", *extra]
    stats = annotate.main(argv)
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "ann.jsonl").read_text().splitlines())}
    return stats, rows


def test_annotate_against_http_teacher_resumes_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    _write_passages(tmp_path / "passages.jsonl")
    with FakeTeacher(busy_first=1, hang=True) as server:
        stats, rows = _run(tmp_path, server.url, "--allow-failures")
        seen_first = Counter(server.seen)
        # second run: the same server (its URL is part of the key) now answers; only the failed passage is
        # asked again
        server.hang = False
        server.seen.clear()
        stats2, rows2 = _run(tmp_path, server.url)
        assert server.seen == Counter(hang=1)
    # 429 then success; the hanging passage timed out (one retry), is reported, not lost
    assert seen_first == Counter(good=1, bad=1, busy=2, hang=2)
    assert rows["hang"]["error"] and "Timeout" in rows["hang"]["error"]
    assert stats["failed"] == 1 and stats["usage"]["errors"] == 1
    assert [(e["mention"], e["type"]) for e in rows["good"]["entities"]] == [
        ("Alice Smith", "person"), ("Acme Corp", "organization"), ("Berlin", "city")]
    assert [(e["mention"], e["type"]) for e in rows["busy"]["entities"]] == [
        ("Marie Curie", "person"), ("Warsaw", "city")]
    # malformed: unquoted pair kept, a group without comma dropped, truncated long type dropped
    assert [(e["mention"], e["type"]) for e in rows["bad"]["entities"]] == [
        ("Bob Jones", "person"), ("Paris", "location")]
    assert stats["dropped"] == {"not_in_passage": 1, "long_type": 1}
    assert stats["parse"]["malformed_groups"] == 1 and stats["parse"]["truncated"] == 1
    assert stats["usage"]["requests"] == 3 and stats["usage"]["prompt_tokens"] == 300
    assert stats["usage"]["cost"] == pytest.approx(0.3 * 0.5 + 0.06 * 1.5)
    assert stats2["failed"] == 0 and stats2["usage"]["cache_hits"] == 3 and stats2["usage"]["requests"] == 1
    assert stats2["usage"]["cost"] == pytest.approx(0.1 * 0.5 + 0.02 * 1.5)
    assert [(e["mention"], e["type"]) for e in rows2["hang"]["entities"]] == [("Nile", "river"), ("Cairo", "city")]
    assert rows2["good"]["entities"] == rows["good"]["entities"]


def test_annotate_exits_nonzero_on_failures(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    (tmp_path / "passages.jsonl").write_text(json.dumps({"id": "hang", "text": PASSAGES["hang"]}) + "\n")
    with FakeTeacher(hang=True) as server, pytest.raises(SystemExit):
        _run(tmp_path, server.url, "--max-retries", "0")
    assert (tmp_path / "ann.jsonl").exists()  # written anyway; the step re-runs and resumes


def test_batch_api_files_without_network(tmp_path):
    _write_passages(tmp_path / "passages.jsonl")
    common = [str(tmp_path / "passages.jsonl"), "--model", "gpt-x", "--cache", str(tmp_path / "cache.sqlite"),
              "--base-url", "http://127.0.0.1:9/v1", "--no-progress"]
    annotate.main(common + ["--batch-input", str(tmp_path / "requests.jsonl")])
    requests = [json.loads(x) for x in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [r["custom_id"] for r in requests] == list(PASSAGES)
    assert requests[0]["url"] == "/v1/chat/completions" and requests[0]["method"] == "POST"
    assert requests[0]["body"] == {"model": "gpt-x", "messages": teacher_messages(PASSAGES["good"]),
                                   "temperature": 0.0, "max_tokens": 1024}
    with (tmp_path / "results.jsonl").open("w") as fh:
        for r in requests[:3]:
            body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWERS[r["custom_id"]]},
                                 "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}
            fh.write(json.dumps({"id": "b", "custom_id": r["custom_id"], "response": {"status_code": 200, "body": body},
                                 "error": None}) + "\n")
        fh.write(json.dumps({"id": "b", "custom_id": "hang", "response": None,
                             "error": {"code": "server_error", "message": "boom"}}) + "\n")
    assert read_batch_results(tmp_path / "results.jsonl")["hang"].error
    stats = annotate.main(common + ["--batch-results", str(tmp_path / "results.jsonl"), "--out",
                                    str(tmp_path / "ann.jsonl"), "--allow-failures"])
    assert stats["failed"] == 1 and stats["mentions_kept"] == 7 and stats["usage"]["requests"] == 3
    # the answers went into the cache: a new batch asks only the failed passage
    annotate.main(common + ["--batch-input", str(tmp_path / "again.jsonl")])
    assert [json.loads(x)["custom_id"] for x in (tmp_path / "again.jsonl").read_text().splitlines()] == ["hang"]
