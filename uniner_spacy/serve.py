"""A small OpenAI-compatible HTTP server around `uniner.HF.v1`.

It lets one process hold the model while many clients (the `openai`
client, `uniner.OpenAI.v1`, the distillation workflow's teacher step) use it
over `/v1/completions` and `/v1/chat/completions`. For production traffic
use vLLM or llama.cpp's server; this one exists so everything here can run
offline and be tested against a real HTTP endpoint.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Tuple

from .backends.hf.backend import HFBackend
from .pipeline.prompts import Template


class Handler(BaseHTTPRequestHandler):
    server: "ModelServer"

    def log_message(self, fmt, *args):  # quiet by default; the server counts requests
        pass

    def _send(self, status: int, body: Dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length", 0))
            req = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, json.JSONDecodeError) as err:
            self._send(400, {"error": {"message": f"bad JSON: {err}"}})
            return
        route = self.path.rstrip("/")
        if route == "/v1/completions":
            prompts = req.get("prompt")
            prompts = [prompts] if isinstance(prompts, str) else prompts
            chat = False
        elif route == "/v1/chat/completions":
            # Vicuna style, the format UniNER models were trained on (not the tokenizer's chat template)
            template = Template(eos=self.server.backend.tokenizer.eos_token)
            prompts = [template.render_chat(req.get("messages", []))]
            chat = True
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        if not prompts or not all(isinstance(p, str) for p in prompts):
            self._send(400, {"error": {"message": "prompt must be a string or a list of strings"}})
            return
        max_tokens = int(req.get("max_tokens") or 256)
        gens, usage = self.server.generate(prompts, max_tokens)
        choices = []
        for i, g in enumerate(gens):
            if chat:
                choice = {"index": i, "message": {"role": "assistant", "content": g.text}, "finish_reason": "stop"}
                if req.get("logprobs"):
                    choice["logprobs"] = {"content": [
                        {"token": t, "logprob": lp, "bytes": None, "top_logprobs": []}
                        for t, lp in g.token_logprobs or []
                    ]}
            else:
                choice = {"index": i, "text": g.text, "finish_reason": "stop", "logprobs": None}
                if req.get("logprobs") is not None:
                    pieces = g.token_logprobs or []
                    choice["logprobs"] = {
                        "tokens": [t for t, _ in pieces], "token_logprobs": [lp for _, lp in pieces],
                        "top_logprobs": None, "text_offset": None,
                    }
            choices.append(choice)
        self._send(200, {
            "id": f"uniner-{time.time_ns()}", "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": self.server.model_name, "choices": choices, "usage": usage,
        })


class ModelServer(ThreadingHTTPServer):
    """Serialises generation (one model, one lock); HTTP handling is threaded."""

    daemon_threads = True

    def __init__(self, backend: HFBackend, host: str = "127.0.0.1", port: int = 0, model_name: str = "uniner"):
        super().__init__((host, port), Handler)
        self.backend = backend
        self.model_name = model_name
        self.lock = threading.Lock()
        self.requests = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/v1"

    def generate(self, prompts: List[str], max_tokens: int) -> Tuple[list, Dict[str, int]]:
        with self.lock:
            self.requests += 1
            saved = self.backend.max_new_tokens
            self.backend.max_new_tokens = max_tokens
            try:
                gens = self.backend.generate(prompts)
            finally:
                self.backend.max_new_tokens = saved
        tok = self.backend.tokenizer
        prompt_tokens = sum(len(tok(p).input_ids) for p in prompts)
        completion_tokens = sum(len(g.token_logprobs or []) for g in gens)
        return gens, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}

    def start(self) -> "ModelServer":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def serve(model: str = "embedded", host: str = "127.0.0.1", port: int = 8000, **backend_kwargs) -> ModelServer:
    return ModelServer(HFBackend(model, **backend_kwargs), host, port).start()
