"""`uniner.OpenAI.v1` over real HTTP on 127.0.0.1: our model server, llama.cpp, and faulty servers."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import spacy
from conftest import TINY_FACTS

from uniner_spacy.backends.hf.backend import HFBackend
from uniner_spacy.backends.openai import OpenAIBackend
from uniner_spacy.questions.parsing import parse_answer
from uniner_spacy.serve import ModelServer
from uniner_spacy.types import Query

QUERIES = [Query(p, t, t) for (p, t) in TINY_FACTS]


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir):
    server = ModelServer(HFBackend(str(tiny_model_dir), max_new_tokens=24)).start()
    yield server
    server.shutdown()


def test_completions_endpoint_gives_known_answers_and_scores(tiny_server, tiny_model_dir):
    backend = OpenAIBackend("uniner", base_url=tiny_server.url, eos="<|im_end|>", max_new_tokens=24,
                            tokenizer=str(tiny_model_dir), concurrency=4)
    gens = backend(QUERIES)
    assert [g.error for g in gens] == [None] * len(QUERIES)
    assert [g.text.strip() for g in gens] == list(TINY_FACTS.values())
    assert all(g.token_logprobs for g in gens)


def test_chat_endpoint(tiny_server):
    backend = OpenAIBackend("uniner", base_url=tiny_server.url, endpoint="chat", eos="<|im_end|>", max_new_tokens=24)
    gens = backend(QUERIES[:3])
    assert [g.text.strip() for g in gens] == list(TINY_FACTS.values())[:3]


def test_component_over_http(tiny_server, tiny_model_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "organization", "location"], "backend": {
        "@misc": "uniner.OpenAI.v1", "model": "uniner", "base_url": tiny_server.url,
        "eos": "<|im_end|>", "max_new_tokens": 24, "tokenizer": str(tiny_model_dir)}})
    doc = nlp("Alice Smith works for Acme Corp in Berlin.")
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("Alice Smith", "person"), ("Acme Corp", "organization"), ("Berlin", "location")]
    assert all(0 < e._.uniner_score <= 1 for e in doc.ents)


class Faulty(BaseHTTPRequestHandler):
    """A server that misbehaves in the ways real ones do."""

    mode = "garbage"
    calls = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "hang":
            time.sleep(3)
            return
        if self.mode == "429" and type(self).calls == 1:
            self.send_response(429)
            self.send_header("retry-after-ms", "10")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "slow down"}}')
            return
        if self.mode == "garbage":
            body = b"<html>definitely not JSON"
        else:
            body = json.dumps({"id": "x", "object": "text_completion", "created": 0, "model": "m",
                               "choices": [{"index": 0, "text": ' ["Berlin"]', "finish_reason": "stop"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def faulty():
    def start(mode):
        handler = type("H", (Faulty,), {"mode": mode, "calls": 0})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1", handler

    servers = []
    yield start
    for s in servers:
        s.shutdown()


def test_timeout_is_recorded_not_raised(faulty):
    url, _ = faulty("hang")
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["location"], "backend": {
        "@misc": "uniner.OpenAI.v1", "model": "m", "base_url": url, "timeout": 0.5, "max_retries": 0}})
    docs = list(nlp.pipe(["Alice lives in Berlin.", "Bob too."]))
    assert len(docs) == 2
    assert [d._.uniner_stats["backend_errors"] for d in docs] == [1, 1]
    assert docs[0].ents == ()


def test_garbage_reply_is_recorded(faulty):
    url, _ = faulty("garbage")
    gens = OpenAIBackend("m", base_url=url, max_retries=0)(QUERIES[:2])
    assert all(g.error and g.text == "" for g in gens)


def test_429_then_success_retries(faulty):
    url, handler = faulty("429")
    gens = OpenAIBackend("m", base_url=url, max_retries=2, concurrency=1)([Query("Alice lives in Berlin.", "location")])
    assert gens[0].error is None and gens[0].text == ' ["Berlin"]'
    assert handler.calls == 2


def test_llama_cpp_server_with_real_gguf():
    """The official client against llama.cpp (xllamacpp) serving the embedded GGUF."""
    xllamacpp = pytest.importorskip("xllamacpp")
    from uniner_spacy.weights import embedded_gguf

    params = xllamacpp.CommonParams()
    params.model.path = str(embedded_gguf())
    params.n_ctx = 1024
    params.n_parallel = 2
    params.cpuparams.n_threads = 2
    server = xllamacpp.Server(params)
    url = server.listening_address.rstrip("/") + "/v1"
    backend = OpenAIBackend("smollm2", base_url=url, eos="<|im_end|>", max_new_tokens=8, timeout=60)
    gens = backend([Query("Alice Smith works for Acme Corp in Berlin.", "person", "person")])
    assert gens[0].error is None and gens[0].text.strip()
    assert gens[0].token_logprobs and "".join(t for t, _ in gens[0].token_logprobs) == gens[0].text


def test_llama_cpp_applies_the_student_adapter():
    """The shipped adapter, written as a llama.cpp LoRA GGUF, turns the base's prose into UniNER lists."""
    xllamacpp = pytest.importorskip("xllamacpp")
    from uniner_spacy.questions.prompts import adapter_layout
    from uniner_spacy.weights import ADAPTER_DIR, adapter_gguf, embedded_gguf

    path = adapter_gguf()
    assert adapter_gguf() == path  # written once
    answers = {}
    for adapters in ([], [path]):
        params = xllamacpp.CommonParams()
        params.model.path = str(embedded_gguf())
        params.n_ctx = 1024
        params.cpuparams.n_threads = 2
        for p in adapters:
            lora = xllamacpp.CommonAdapterLoraInfo()
            lora.path, lora.scale = str(p), 1.0
            params.lora_adapters = [lora]
        server = xllamacpp.Server(params)
        url = server.listening_address.rstrip("/") + "/v1"
        backend = OpenAIBackend("smollm2", base_url=url, eos="<|im_end|>", max_new_tokens=24, timeout=120,
                                layout=adapter_layout(ADAPTER_DIR))  # asked as the student was trained
        passage = "Barack Obama met Angela Merkel in Berlin on Tuesday."
        answer = backend([Query(passage, "person", "person")])[0]
        assert answer.error is None
        answers[bool(adapters)] = answer.text
        del server
    assert parse_answer(answers[True]).mentions == ["Barack Obama", "Angela Merkel"]
    assert answers[False] != answers[True]


def test_requests_run_in_order_at_most_workers_at_once_and_stop_when_the_caller_does():
    """The one way requests run (the backend's and the distillation teacher's): results in the items'
    order, `workers` in flight at most, and after an error in the caller no request is started."""
    import threading
    import time

    from uniner_spacy.backends.openai import ask_concurrently

    lock, running, peak, started = threading.Lock(), [0], [0], []

    def ask(i):
        with lock:
            started.append(i)
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02 * (5 - i % 5))  # later items finish first
        with lock:
            running[0] -= 1
        return i * i

    assert ask_concurrently(ask, list(range(10)), 3) == [i * i for i in range(10)]
    assert peak[0] == 3 and sorted(started) == list(range(10))

    started.clear()

    def fail(i, result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ask_concurrently(ask, list(range(10)), 2, done=fail)
    assert len(started) <= 3  # the first answer, and what the other worker had already started
