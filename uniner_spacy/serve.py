"""A small OpenAI-compatible HTTP server around `uniner.HF.v1`.

It lets one process hold the model while many clients (the `openai`
client, `uniner.OpenAI.v1`, the distillation workflow's teacher step) use it
over `/v1/completions` and `/v1/chat/completions`. For production traffic
use vLLM or llama.cpp's server; this one exists so everything here can run
offline and be tested against a real HTTP endpoint.

Every request gets a status and, for errors, OpenAI's error body
(`{"error": {"message", "type", "code"}}`): 400 bad request, 401 bad or
missing bearer token (when one is set), 404 unknown path, 411 no
Content-Length, 413 over a cap (`max_body_bytes`, `max_prompts`,
`max_tokens`), 500 a failed generation (its message; the traceback stays in
the server's log). `finish_reason` is "length" when an answer hit
`max_tokens`.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .backends.hf.backend import HFBackend
from .errors import ConfigError
from .pipeline.prompts import Template

logger = logging.getLogger(__name__)

API_KEY_ENV = "UNINER_API_KEY"  # where `uniner-spacy serve` looks for a bearer token by default
MAX_PROMPTS = 64  # prompts per request: a request is one padded batch on the model
MAX_TOKENS = 1024  # the largest `max_tokens` a request may ask for
MAX_BODY_BYTES = 1 << 20
READ_TIMEOUT = 30.0  # seconds a client may take to send its request
Prompt = Union[str, List[int]]  # text, or token ids (OpenAI's completions take both)


class ApiError(Exception):
    """An error reply: its status and OpenAI's error fields."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type, code


class Handler(BaseHTTPRequestHandler):
    server: "ModelServer"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # a client that stops sending cannot hold a thread

    def log_message(self, fmt, *args):  # quiet by default; the server counts requests
        pass

    def _send(self, status: int, body: Dict, headers: Sequence[Tuple[str, str]] = ()) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self._replied = True

    def _handle(self, route) -> None:
        self._replied = False
        self._body_read = self.command == "GET"  # a GET carries no body
        try:
            self._authorize()
            route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left; nobody to answer
            return
        except ApiError as err:
            self._fail(err)
        except TimeoutError:
            self._fail(ApiError(408, f"the request body did not arrive within {self.server.read_timeout} s"))
        except Exception as err:  # noqa: BLE001 - any failure is a 500 with its message, never a dropped connection
            logger.exception("request to %s failed", self.path)
            self._fail(ApiError(500, f"{type(err).__name__}: {err}", "server_error"))

    def _fail(self, err: ApiError) -> None:
        if self._replied:
            return
        headers = [("WWW-Authenticate", "Bearer")] if err.status == 401 else []
        try:
            self._send(err.status, {"error": {"message": err.message, "type": err.type, "code": err.code}}, headers)
            if not self._body_read:
                self._linger()
        except OSError:
            self.close_connection = True

    def _linger(self) -> None:
        """Answered before the body was read: let the client finish sending before the socket closes,
        or it may see a reset instead of the reply."""
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_WR)
        self.connection.settimeout(1.0)
        left, deadline = 16 * self.server.max_body_bytes, time.monotonic() + 2.0
        while left > 0 and time.monotonic() < deadline:
            chunk = self.connection.recv(65536)
            if not chunk:
                break
            left -= len(chunk)

    def _authorize(self) -> None:
        key = self.server.api_key
        if key is None:
            return
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise ApiError(401, "missing or wrong API key: send `Authorization: Bearer <key>`",
                           code="invalid_api_key")

    def _body(self) -> Dict[str, Any]:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise ApiError(411, "chunked bodies are not accepted: send a Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise ApiError(411, "a POST needs a Content-Length header")
        if not re.fullmatch(r"[0-9]+", raw.strip()):
            raise ApiError(400, f"Content-Length must be a whole number ≥ 0, got {raw!r}")
        length = int(raw)
        if length > self.server.max_body_bytes:
            raise ApiError(413, f"the body is {length} bytes; at most {self.server.max_body_bytes} are accepted")
        data = self.rfile.read(length)
        if len(data) < length:
            raise ApiError(400, f"the body ended after {len(data)} of {length} bytes")
        self._body_read = True
        try:
            req = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ApiError(400, f"the body is not valid JSON: {err}") from None
        if not isinstance(req, dict):
            raise ApiError(400, f"the body must be a JSON object, got {type(req).__name__}")
        return req

    # -- routes ------------------------------------------------------------
    def do_GET(self):
        self._handle(self._get)

    def do_POST(self):
        self._handle(self._post)

    def do_PUT(self):
        self._handle(self._not_allowed)

    do_DELETE = do_PATCH = do_PUT

    def _not_allowed(self) -> None:
        raise ApiError(405, f"{self.command} is not supported; use GET /v1/models or POST a completion")

    def _get(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            raise ApiError(404, f"no route GET {self.path}", code="not_found")
        self._send(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]})

    def _post(self) -> None:
        route = self.path.rstrip("/")
        if route not in ("/v1/completions", "/v1/chat/completions"):
            raise ApiError(404, f"no route POST {self.path}", code="not_found")
        req = self._body()
        chat = route == "/v1/chat/completions"
        texts = None
        if chat:
            # Vicuna style, the format UniNER models were trained on (not the tokenizer's chat template), in
            # the model's layout: UniNER's questions reach a type-last student as it was trained on them
            backend = self.server.backend
            template = Template(eos=backend.tokenizer.eos_token, layout=backend.prompter.layout)
            text, spans = template.render_chat_texts(_messages(req.get("messages")))
            prompts: List[Prompt] = [text]
            texts = [spans]  # message contents are text: `<|im_end|>` in one is no control token
        else:
            prompts = self.server.check_prompts(req.get("prompt"))
        # chat clients may send the newer `max_completion_tokens`
        limit = req.get("max_completion_tokens", req.get("max_tokens")) if chat else req.get("max_tokens")
        max_tokens = self.server.check_max_tokens(limit)
        gens, usage = self.server.generate(prompts, max_tokens, texts)
        choices = []
        for i, g in enumerate(gens):
            finish = "length" if g.finish_reason == "length" else "stop"
            if chat:
                choice = {"index": i, "message": {"role": "assistant", "content": g.text}, "finish_reason": finish}
                if req.get("logprobs"):
                    choice["logprobs"] = {"content": [
                        {"token": t, "logprob": lp, "bytes": None, "top_logprobs": []}
                        for t, lp in g.token_logprobs or []
                    ]}
            else:
                choice = {"index": i, "text": g.text, "finish_reason": finish, "logprobs": None}
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


def _messages(messages: Any) -> List[Dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` must be a non-empty list of {role, content} objects")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise ApiError(400, f"messages[{k}] must be an object with a string `content`")
        if m.get("role") not in ("system", "user", "assistant"):
            raise ApiError(400, f"messages[{k}].role must be system, user or assistant, got {m.get('role')!r}")
    return messages


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool)
                                                           for t in value)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key_from_env(name: Optional[str] = None) -> Optional[str]:
    """The bearer token clients must send: `$name`, or `$UNINER_API_KEY` when no name is given.

    A variable named on purpose must be set; the default one may be absent (no authentication).
    """
    key = os.environ.get(name or API_KEY_ENV) or None
    if name and key is None:
        raise ConfigError(f"the API key variable ${name} is not set (or empty)")
    return key


class ModelServer(ThreadingHTTPServer):
    """Serialises generation (one model, one lock); HTTP handling is threaded.

    `backend` needs `generate(prompts, texts=...)`, a `max_new_tokens` attribute and a `tokenizer`
    (`HFBackend` has them). `api_key`: the bearer token every request must carry (None: open).
    """

    daemon_threads = True

    def __init__(self, backend: HFBackend, host: str = "127.0.0.1", port: int = 0, model_name: str = "uniner", *,
                 api_key: Optional[str] = None, max_prompts: int = MAX_PROMPTS, max_tokens: int = MAX_TOKENS,
                 max_body_bytes: int = MAX_BODY_BYTES, read_timeout: float = READ_TIMEOUT):
        for name, value in (("max_prompts", max_prompts), ("max_tokens", max_tokens),
                            ("max_body_bytes", max_body_bytes)):
            if value < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {value}")
        super().__init__((host, port), Handler)
        self.backend = backend
        self.model_name = model_name
        self.api_key = api_key or None
        self.max_prompts, self.max_tokens, self.max_body_bytes = max_prompts, max_tokens, max_body_bytes
        self.read_timeout = read_timeout
        self.lock = threading.Lock()
        self.requests = 0
        if self.exposed:
            logger.warning("serving on %s without an API key: anyone who can reach it can use the model "
                           "(set $%s)", host, API_KEY_ENV)

    @property
    def exposed(self) -> bool:
        """Bound beyond this machine with no API key."""
        host = self.server_address[0]
        host = host.decode() if isinstance(host, bytes) else host
        return self.api_key is None and not is_loopback(str(host))

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/v1"

    def check_prompts(self, prompt: Any) -> List[Prompt]:
        """A string, token ids, or a non-empty list of either (OpenAI's `prompt`)."""
        if isinstance(prompt, str) or _is_ids(prompt):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) or _is_ids(p) for p in prompt):
            prompts = prompt
        else:
            raise ApiError(400, "`prompt` must be a string, a list of token ids, or a non-empty list of either")
        if len(prompts) > self.max_prompts:
            raise ApiError(413, f"{len(prompts)} prompts in one request; at most {self.max_prompts}")
        vocab = len(self.backend.tokenizer)
        for p in prompts:
            if not isinstance(p, str) and not all(0 <= t < vocab for t in p):
                raise ApiError(400, f"token ids must lie in [0, {vocab})")
        return prompts

    def check_max_tokens(self, value: Any) -> int:
        if value is None:
            return min(self.backend.max_new_tokens, self.max_tokens)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ApiError(400, f"`max_tokens` must be a whole number ≥ 1, got {value!r}")
        if value > self.max_tokens:
            raise ApiError(413, f"`max_tokens` is {value}; this server allows at most {self.max_tokens}")
        return value

    def generate(self, prompts: Sequence[Prompt], max_tokens: int,
                 texts: Optional[Sequence[Sequence[Tuple[int, int]]]] = None) -> Tuple[list, Dict[str, int]]:
        with self.lock:
            self.requests += 1
            saved = self.backend.max_new_tokens
            self.backend.max_new_tokens = max_tokens
            try:
                gens = self.backend.generate(prompts, texts=texts)
            finally:
                self.backend.max_new_tokens = saved
        tok = self.backend.tokenizer
        prompt_tokens = sum(len(p) if isinstance(p, list) else len(tok(p).input_ids) for p in prompts)
        completion_tokens = sum(len(g.token_logprobs or []) for g in gens)
        return gens, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}

    def start(self) -> "ModelServer":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def serve(model: str = "embedded", host: str = "127.0.0.1", port: int = 8000, *, api_key: Optional[str] = None,
          max_prompts: int = MAX_PROMPTS, max_tokens: int = MAX_TOKENS, max_body_bytes: int = MAX_BODY_BYTES,
          **backend_kwargs) -> ModelServer:
    return ModelServer(HFBackend(model, **backend_kwargs), host, port, api_key=api_key, max_prompts=max_prompts,
                       max_tokens=max_tokens, max_body_bytes=max_body_bytes).start()
