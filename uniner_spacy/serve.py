"""A small OpenAI-compatible HTTP server around `uniner.HF.v1`.

It lets one process hold the model while many clients (the `openai`
client, `uniner.OpenAI.v1`, the distillation workflow's teacher step) use it
over `/v1/completions` and `/v1/chat/completions`. For production traffic
use vLLM or llama.cpp's server; this one exists so everything here can run
offline and be tested against a real HTTP endpoint.

Every request gets a status and, for errors, OpenAI's error body
(`{"error": {"message", "type", "code"}}`): 400 bad request (a prompt over the
model's context, `stream: true`, JSON nested too deeply included), 401 bad or
missing bearer token (when one is set), 404 unknown path, 408 a request that
did not arrive in time, 411 no Content-Length, 413 over a cap
(`max_body_bytes`, `max_prompts`, `max_tokens`), 500 a failed generation (a
reference only; the traceback stays in the server's log), 503 with
`Retry-After` when the server is full. `finish_reason` is "length" when an
answer hit `max_tokens`.

Under load: a fixed pool of `workers` threads handles requests, `queue` more
connections wait for one, and beyond that a connection is answered 503 at
once. Each request must arrive whole within `read_timeout` (one deadline, not
one per receive), and a generation that cannot get the model within
`max_wait` is a 503. Generations run one at a time on the backend; the
handlers tokenize (usage, the context cap) with the server's own copy of the
tokenizer, one at a time, because a fast tokenizer's settings are shared
state (it flips its special-token flag per call) that concurrent calls break.
"""
from __future__ import annotations

import copy
import hmac
import io
import ipaddress
import json
import logging
import math
import os
import re
import selectors
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from queue import Empty, Full, Queue
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .backends.base import PromptEncoder
from .backends.hf.backend import HFBackend
from .errors import ConfigError
from .questions.prompts import Template

logger = logging.getLogger(__name__)

API_KEY_ENV = "UNINER_API_KEY"  # where `uniner-spacy serve` looks for a bearer token by default
MAX_PROMPTS = 64  # prompts per request: a request is one padded batch on the model
MAX_TOKENS = 1024  # the largest `max_tokens` a request may ask for
MAX_BODY_BYTES = 1 << 20
READ_TIMEOUT = 30.0  # seconds a client may take to send its whole request
WORKERS = 16  # threads handling requests (generation itself is one at a time)
QUEUE = 64  # accepted connections waiting for a worker; more are answered 503
MAX_WAIT = 120.0  # seconds a generation may wait for the model before it is answered 503
LISTEN_BACKLOG = 128  # connections the kernel holds before the server accepts them
REFUSALS = 256  # answered 503 and read until they close; beyond them a refused connection is closed at once
Prompt = Union[str, List[int]]  # text, or token ids (OpenAI's completions take both)


class ApiError(Exception):
    """An error reply: its status and OpenAI's error fields."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code: Optional[str] = None,
                 retry_after: Optional[int] = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type, code
        self.retry_after = retry_after


class _Deadline(io.RawIOBase):
    """A socket's reads, all within one deadline: a client sending a byte every few seconds runs out of
    time too (a per-receive time-out would wait on it for as long as it keeps sending)."""

    def __init__(self, sock: socket.socket, seconds: float):
        self.sock, self.end, self.seconds = sock, time.monotonic() + seconds, seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the request did not arrive within {self.seconds} s")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class Handler(BaseHTTPRequestHandler):
    server: "ModelServer"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced: the whole request, headers and body, shares one deadline
        self.rfile = io.BufferedReader(_Deadline(self.connection, self.server.read_timeout))

    def log_message(self, fmt, *args):  # quiet by default; the server counts requests
        pass

    def _send(self, status: int, body: Dict, headers: Sequence[Tuple[str, str]] = ()) -> None:
        data = json.dumps(body).encode()
        self.connection.settimeout(self.server.read_timeout)  # whatever the read deadline left
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
            self._fail(ApiError(408, f"the request did not arrive within {self.server.read_timeout} s"))
        except Exception:  # noqa: BLE001 - any failure is a 500, never a dropped connection
            # exception text may hold paths and settings: it goes to the log, the client gets a reference
            ref = uuid.uuid4().hex[:12]
            logger.exception("request %s to %s failed", ref, self.path)
            self._fail(ApiError(500, f"the server failed on this request (reference {ref}; the details are "
                                     "in the server's log)", "server_error"))

    def _fail(self, err: ApiError) -> None:
        if self._replied:
            return
        headers = [("WWW-Authenticate", "Bearer")] if err.status == 401 else []
        if err.retry_after is not None:
            headers.append(("Retry-After", str(err.retry_after)))
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
        except RecursionError:
            raise ApiError(400, "the body's JSON is nested too deeply") from None
        if not isinstance(req, dict):
            raise ApiError(400, f"the body must be a JSON object, got {type(req).__name__}")
        if req.get("stream"):
            raise ApiError(400, "`stream: true` is not supported: this server answers whole; send the request "
                                "without `stream`", code="stream_unsupported")
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
            template = Template(eos=self.server.tokenizer.eos_token, layout=self.server.backend.prompter.layout)
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


def model_context(backend: Any) -> Optional[int]:
    """Tokens the backend's model can attend to (`max_position_embeddings`), else its tokenizer's
    `model_max_length` when that is a real limit; None when neither says."""
    config = getattr(getattr(backend, "model", None), "config", None)
    n = getattr(config, "max_position_embeddings", None)
    if isinstance(n, int) and n > 0:
        return n
    n = getattr(getattr(backend, "tokenizer", None), "model_max_length", None)
    return n if isinstance(n, int) and 0 < n < 10**7 else None  # transformers says "no limit" with 1e30


class ModelServer(HTTPServer):
    """Handles requests on a fixed pool of threads; generation runs one request at a time.

    `backend` needs `generate(prompts, texts=...)`, a `max_new_tokens` attribute and a `tokenizer`
    (`HFBackend` has them; the model's context is read from `backend.model.config`, or give
    `context`). `api_key`: the bearer token every request must carry (None: open). `workers` threads
    handle requests and `queue` more connections wait; beyond that a connection gets 503 with
    `Retry-After`, as does a generation that waits `max_wait` seconds for the model. A request must
    arrive whole within `read_timeout` seconds.
    """

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, backend: HFBackend, host: str = "127.0.0.1", port: int = 0, model_name: str = "uniner", *,
                 api_key: Optional[str] = None, max_prompts: int = MAX_PROMPTS, max_tokens: int = MAX_TOKENS,
                 max_body_bytes: int = MAX_BODY_BYTES, read_timeout: float = READ_TIMEOUT, workers: int = WORKERS,
                 queue: int = QUEUE, max_wait: float = MAX_WAIT, context: Optional[int] = None):
        for name, value in (("max_prompts", max_prompts), ("max_tokens", max_tokens),
                            ("max_body_bytes", max_body_bytes), ("workers", workers), ("queue", queue)):
            if value < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {value}")
        for name, seconds in (("read_timeout", read_timeout), ("max_wait", max_wait)):
            if not seconds > 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {seconds}")
        # the handlers' own tokenizer (the backend's is used only under the generation lock), itself used
        # under a lock: a fast tokenizer's settings are shared, mutable state (module docstring)
        self.tokenizer = copy.deepcopy(backend.tokenizer)
        self.encoder = PromptEncoder(self.tokenizer)
        self.vocab_size = len(self.tokenizer)
        self.tokenizer_lock = threading.Lock()
        self.context = context or model_context(backend)
        super().__init__((host, port), Handler)
        self.backend = backend
        # read once: a running generation sets the backend's to its own request's `max_tokens`
        self.default_max_tokens = min(backend.max_new_tokens, max_tokens)
        self.model_name = model_name
        self.api_key = api_key or None
        self.max_prompts, self.max_tokens, self.max_body_bytes = max_prompts, max_tokens, max_body_bytes
        self.read_timeout, self.max_wait = read_timeout, max_wait
        self.lock = threading.Lock()  # the model: one generation at a time
        self.requests = 0
        self.waiting = 0  # generations waiting for the model or running
        self.seconds_per_generation = 1.0  # a running mean, for Retry-After
        self._state = threading.Lock()
        self._pending: Queue[Optional[Tuple[socket.socket, Any]]] = Queue(maxsize=queue)
        self._refused: Queue[Optional[socket.socket]] = Queue(maxsize=REFUSALS)
        self._workers = [threading.Thread(target=self._work, daemon=True, name=f"uniner-serve-{k}")
                         for k in range(workers)]
        for t in self._workers + [threading.Thread(target=self._refuse_loop, daemon=True, name="uniner-serve-503")]:
            t.start()
        if self.context is None:
            logger.warning("the model's context length is unknown: prompts are not capped by length")
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

    # -- the worker pool -----------------------------------------------------
    def process_request(self, request, client_address) -> None:
        try:
            self._pending.put_nowait((request, client_address))
        except Full:
            self._refuse(request)

    def _work(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            request, address = item
            try:
                self.finish_request(request, address)
            except Exception:  # noqa: BLE001 - one connection's failure (a reset) must not end the worker
                self.handle_error(request, address)
            finally:
                self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        logger.debug("connection from %s failed", client_address, exc_info=True)

    def retry_after(self) -> int:
        """Seconds until the work ahead is likely done: what waits for the model and for a worker."""
        ahead = self.waiting + self._pending.qsize()
        # at most 120 s: the `openai` client does not retry at all beyond that
        return max(1, min(120, math.ceil(ahead * self.seconds_per_generation)))

    def _refuse(self, request: socket.socket) -> None:
        """503 at once to a connection no worker can take (on the accepting thread: a fresh connection's
        send buffer takes the reply whole); `_refuse_loop` closes it."""
        wait = self.retry_after()
        body = json.dumps({"error": {"message": f"the server is busy (all {len(self._workers)} workers and "
                                                f"{self._pending.maxsize} queued requests); retry after {wait} s",
                                     "type": "server_overloaded", "code": "overloaded"}}).encode()
        head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: {wait}\r\nConnection: close\r\n\r\n")
        try:
            request.setblocking(False)
            request.send(head.encode() + body)
            request.shutdown(socket.SHUT_WR)
            self._refused.put_nowait(request)
        except (OSError, Full):  # gone already, or a flood: no time to wait on each
            request.close()

    def _refuse_loop(self) -> None:
        """Reads what refused clients still send until they close, a second at most, so that they see the
        503 rather than a reset (closing on unread data resets); all of them at once, on one selector."""
        lingering = selectors.DefaultSelector()

        def close(sock) -> None:
            lingering.unregister(sock)
            sock.close()

        while True:
            try:
                sock = self._refused.get(timeout=0.05 if lingering.get_map() else None)
            except Empty:
                pass
            else:
                if sock is None:
                    break
                lingering.register(sock, selectors.EVENT_READ, time.monotonic() + 1.0)
            for key, _ in lingering.select(timeout=0):
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    close(key.fileobj)
            now = time.monotonic()
            for key in list(lingering.get_map().values()):
                if key.data < now:
                    close(key.fileobj)
        for key in list(lingering.get_map().values()):
            close(key.fileobj)

    def server_close(self) -> None:
        super().server_close()
        for pending in (self._pending, self._refused):
            while True:
                try:
                    item = pending.get_nowait()
                except Empty:
                    break
                if item is not None:
                    self.shutdown_request(item[0] if isinstance(item, tuple) else item)
        # workers busy with a request stop after it (daemon threads: they never hold up an exit)
        for stop in [self._pending] * len(self._workers) + [self._refused]:
            try:
                stop.put_nowait(None)
            except Full:
                pass

    # -- requests --------------------------------------------------------------
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
        for p in prompts:
            if not isinstance(p, str) and not all(0 <= t < self.vocab_size for t in p):
                raise ApiError(400, f"token ids must lie in [0, {self.vocab_size})")
        return prompts

    def check_max_tokens(self, value: Any) -> int:
        if value is None:
            return self.default_max_tokens
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ApiError(400, f"`max_tokens` must be a whole number ≥ 1, got {value!r}")
        if value > self.max_tokens:
            raise ApiError(413, f"`max_tokens` is {value}; this server allows at most {self.max_tokens}")
        return value

    def count_tokens(self, prompts: Sequence[Prompt], texts: Optional[Sequence[Sequence[Tuple[int, int]]]] = None
                     ) -> List[int]:
        """Each prompt's length in the tokens the model will be given (document text's special-token
        strings split, as the backend encodes them)."""
        with self.tokenizer_lock:
            return [len(p) if isinstance(p, list) else len(self.encoder(p, texts[k] if texts is not None else ()))
                    for k, p in enumerate(prompts)]

    def check_context(self, lengths: Sequence[int], max_tokens: int) -> None:
        if self.context is None:
            return
        for k, n in enumerate(lengths):
            if n + max_tokens > self.context:
                which = f"prompt {k} is" if len(lengths) > 1 else "the prompt is"
                raise ApiError(400, f"{which} {n} tokens and `max_tokens` asks for {max_tokens} more, over this "
                                    f"model's context of {self.context} tokens: shorten the prompt or lower "
                                    "`max_tokens`", code="context_length_exceeded")

    def generate(self, prompts: Sequence[Prompt], max_tokens: int,
                 texts: Optional[Sequence[Sequence[Tuple[int, int]]]] = None) -> Tuple[list, Dict[str, int]]:
        lengths = self.count_tokens(prompts, texts)
        self.check_context(lengths, max_tokens)
        with self._state:
            self.waiting += 1
        try:
            if not self.lock.acquire(timeout=self.max_wait):
                wait = self.retry_after()
                raise ApiError(503, f"the model is busy: this request waited {self.max_wait:g} s for it; retry "
                                    f"after {wait} s", "server_overloaded", "overloaded", retry_after=wait)
            try:
                self.requests += 1
                start = time.monotonic()
                saved = self.backend.max_new_tokens
                self.backend.max_new_tokens = max_tokens
                try:
                    gens = self.backend.generate(prompts, texts=texts)
                finally:
                    self.backend.max_new_tokens = saved
                self.seconds_per_generation += 0.2 * (time.monotonic() - start - self.seconds_per_generation)
            finally:
                self.lock.release()
        finally:
            with self._state:
                self.waiting -= 1
        prompt_tokens = sum(lengths)
        completion_tokens = sum(len(g.token_logprobs or []) for g in gens)
        return gens, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}

    def start(self) -> "ModelServer":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def serve(model: str = "embedded", host: str = "127.0.0.1", port: int = 8000, *, api_key: Optional[str] = None,
          max_prompts: int = MAX_PROMPTS, max_tokens: int = MAX_TOKENS, max_body_bytes: int = MAX_BODY_BYTES,
          read_timeout: float = READ_TIMEOUT, workers: int = WORKERS, queue: int = QUEUE, max_wait: float = MAX_WAIT,
          **backend_kwargs) -> ModelServer:
    """Load `model` (an `HFBackend`) and serve it on a background thread; see `ModelServer`."""
    return ModelServer(HFBackend(model, **backend_kwargs), host, port, api_key=api_key, max_prompts=max_prompts,
                       max_tokens=max_tokens, max_body_bytes=max_body_bytes, read_timeout=read_timeout,
                       workers=workers, queue=queue, max_wait=max_wait).start()
