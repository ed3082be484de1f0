"""A real OpenAI-compatible server on 127.0.0.1 that answers UniNER prompts from a table and
misbehaves on request: the fault-injection suite's stand-in for a vLLM or llama.cpp server.

`FaultServer(answers)` answers each question with the listed mentions of the asked type that
occur in the passage (each after `delay` seconds). `fail_next(n, mode, after=k)` makes `n`
requests (None: all until `heal()`), after the next `k`, misbehave: "500", "429" (with
Retry-After: 0), "slow" (answers after `slow_seconds`), "garbage" (200 with a body that is not
JSON), "truncated" (200 with half a body, then the connection closes), "drop" (closes the
connection with no response). `stop()` / `start()` take the port
down and bring it back, so a client sees refused connections in between.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Deque, Dict, List, Optional

MODES = ("500", "429", "slow", "garbage", "truncated", "drop")
PASSAGE = re.compile(r"Text: (.*?) ASSISTANT: I've read this text\.", re.S)
QUESTION = re.compile(r"What describes (.*?) in the text\?")
USAGE = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_HTTP"

    def log_message(self, fmt, *args):  # quiet: the server counts requests
        pass

    def _send(self, status: int, body: bytes, headers: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        mode = owner._next_mode()
        if mode == "drop":
            self.close_connection = True
            self.connection.close()
            return
        if mode == "500":
            return self._send(500, b'{"error": {"message": "injected fault", "type": "server_error"}}')
        if mode == "429":
            return self._send(429, b'{"error": {"message": "slow down", "type": "rate_limit"}}',
                              {"Retry-After": "0"})
        if mode == "slow":
            time.sleep(owner.slow_seconds)
        body = json.dumps(owner.respond(self.path, request)).encode()
        if mode == "garbage":
            return self._send(200, b"<html>502 Bad Gateway</html>")
        if mode == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self._send(200, body)


class _HTTP(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "FaultServer"

    def handle_error(self, request, client_address):  # a client that hung up on a fault is expected
        pass


class FaultServer:
    def __init__(self, answers: Dict[str, List[str]], port: int = 0, slow_seconds: float = 3.0,
                 delay: float = 0.0, reply: Optional[str] = None):
        self.answers = {k: list(v) for k, v in answers.items()}
        self.reply = reply  # set: every answer is this text (a teacher's, say)
        self.slow_seconds = slow_seconds
        self.delay = delay
        self.requests = 0  # requests received, answered or not
        self.faults = 0  # requests that misbehaved
        self._plan: Deque[Optional[str]] = deque()  # modes for the next requests (None: answer)
        self._lock = threading.Lock()
        self._http: Optional[_HTTP] = None
        self.port = port
        self.start()

    # -- control -------------------------------------------------------------
    def fail_next(self, n: Optional[int], mode: str, after: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        with self._lock:
            self._plan.extend([None] * after)
            if n is None:
                self._plan.extend([mode] * 10**6)  # until heal()
            else:
                self._plan.extend([mode] * n)

    def heal(self) -> None:
        with self._lock:
            self._plan.clear()

    def start(self) -> "FaultServer":
        if self._http is None:
            self._http = _HTTP(("127.0.0.1", self.port), _Handler)
            self._http.owner = self
            self.port = self._http.server_address[1]
            threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FaultServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- answering -----------------------------------------------------------
    def _next_mode(self) -> Optional[str]:
        with self._lock:
            self.requests += 1
            mode = self._plan.popleft() if self._plan else None
            if mode:
                self.faults += 1
        if self.delay:
            time.sleep(self.delay)
        return mode

    def answer(self, prompt: str) -> str:
        if self.reply is not None:
            return self.reply
        passage, question = PASSAGE.search(prompt), QUESTION.findall(prompt)
        if not passage or not question:
            return "[]"
        found = [m for m in self.answers.get(question[-1], []) if m in passage.group(1)]
        return json.dumps(found, ensure_ascii=False)

    def respond(self, path: str, request: dict) -> dict:
        if path.endswith("/chat/completions"):
            prompt = " ".join(str(m.get("content", "")) for m in request.get("messages", []))
            prompt = prompt.replace(" I've read this text.", " ASSISTANT: I've read this text.")
            text = self.answer(prompt)
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return {"id": "fault", "object": "chat.completion", "created": 0, "model": request.get("model"),
                    "choices": [choice], "usage": USAGE}
        text = self.answer(str(request.get("prompt", "")))
        return {"id": "fault", "object": "text_completion", "created": 0, "model": request.get("model"),
                "choices": [{"index": 0, "text": " " + text, "finish_reason": "stop", "logprobs": None}],
                "usage": USAGE}
