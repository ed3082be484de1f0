"""`uniner.OpenAI.v1`: any OpenAI-compatible server (vLLM, llama.cpp, OpenAI).

UniNER-format models are asked through the completions endpoint with the raw
prompt; chat models through the chat endpoint with the same four turns.
Requests run with bounded concurrency; the official client retries 429, 5xx
and time-outs with exponential back-off. `openai_client` and `ask_concurrently`
are that one client and that one way of running requests, which the
distillation teacher (distill/teacher.py) uses too. A query that still fails comes back
as a `Generation` with `error` set, so one bad request never loses a batch;
one cut at `max_new_tokens` has `finish_reason` "length".

A server tokenizes a prompt string whole, so a special-token string in a
passage (`<|im_end|>`) would become a control token there. With `tokenizer`
set (the server model's own), such a prompt goes to the completions endpoint
as token ids, the passage's special strings split as text; other prompts go as
text, as before. Without it, or over the chat endpoint (the server renders
the messages), that cannot be prevented from here: it is logged once.

The key in `api_key_env` is sent only to a host the user chose (`trust.secret_may_go_to`: OpenAI's
own, OPENAI_BASE_URL's, or one in UNINER_ALLOWED_HOSTS); to a `base_url` that only a config names,
a placeholder goes instead, with a warning (docs/security.md).
"""
from __future__ import annotations

import logging
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

from ..errors import ConfigError
from ..registry import registry
from ..trust import ALLOWED_HOSTS_ENV, host_label, secret_may_go_to
from ..types import Generation, Query
from .base import PromptEncoder, Prompter, approx_token_offsets, describe

logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def openai_client(base_url: Optional[str], api_key: str, *, timeout: float, max_retries: int):
    """The `openai` client every request of ours goes through: its own retry policy (exponential
    back-off on 429, 5xx, connection errors and time-outs, `max_retries` times), `timeout` a request."""
    import openai

    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)


def request_error(err: BaseException) -> str:
    """A request that failed after its retries, as the error recorded on its answer."""
    return f"{type(err).__name__}: {err}"


def ask_concurrently(ask: Callable[[T], R], items: Sequence[T], workers: int,
                     done: Optional[Callable[[int, R], None]] = None) -> List[R]:
    """`ask(item)` for every item on at most `workers` threads, the results in the items' order;
    `done(i, result)` runs in the calling thread as each arrives. `ask` records its own failures (it
    never raises). An error or Ctrl-C in the calling thread sends nothing more: the requests already
    sent are paid for, so they are awaited, their workers keeping what arrives (a second Ctrl-C
    stops the wait)."""
    out: List[Optional[R]] = [None] * len(items)
    if not items:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))))
    futures: Dict[Future, int] = {}
    try:
        for i, item in enumerate(items):
            futures[pool.submit(ask, item)] = i
        for fut in as_completed(futures):
            out[futures[fut]] = result = fut.result()
            if done is not None:
                done(futures[fut], result)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        running = sum(1 for f in futures if not f.done())
        if running:
            logger.warning("stopping; waiting for %d requests already sent, to keep their answers", running)
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    return out  # type: ignore[return-value]


@registry.misc("uniner.OpenAI.v1")
class OpenAIBackend:
    def __init__(
        self,
        model: str,
        *,
        base_url: Optional[str] = None,
        api_key_env: str = "OPENAI_API_KEY",
        endpoint: str = "completions",
        concurrency: int = 8,
        max_retries: int = 3,
        timeout: float = 60.0,
        max_new_tokens: int = 256,
        logprobs: bool = True,
        eos: str = "</s>",
        tokenizer: Optional[str] = None,
        system: str = "text",
        dataset: Optional[str] = None,
        layout: str = "uniner",
    ):
        if endpoint not in ("completions", "chat"):
            raise ConfigError(f"endpoint must be 'completions' or 'chat', got {endpoint!r}")
        if endpoint == "chat" and layout != "uniner":
            raise ConfigError(f"layout {layout!r} ends its prompt inside the assistant's turn: "
                             "use the completions endpoint")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be ≥ 1, got {concurrency}")
        self.name = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.max_new_tokens = max_new_tokens
        self.logprobs = logprobs
        self.eos = eos
        self.tokenizer_name = tokenizer
        self.prompter = Prompter(system=system, dataset=dataset, layout=layout)
        self.template = self.prompter.template(eos)
        self._client = None
        self._tokenizer = None
        self._encoder: Optional[PromptEncoder] = None
        self._warned = False
        self.withheld: Optional[str] = None  # why the key in `api_key_env` was not sent, if it was not

    @property
    def client(self):
        if self._client is None:
            self._client = openai_client(self.base_url, self.api_key(), timeout=self.timeout,
                                         max_retries=self.max_retries)
        return self._client

    def api_key(self) -> str:
        """The secret in `api_key_env`, where it may go to `base_url` (trust.secret_may_go_to); else a
        placeholder, which local servers take: a pipeline or config from someone else may set both
        settings, and must not make this process send the user's secrets to a host of their choosing."""
        key = os.environ.get(self.api_key_env)
        if not key:
            return "EMPTY"  # local servers take any key
        if secret_may_go_to(self.base_url):
            return key
        self.withheld = (f"the key in ${self.api_key_env} was not sent to {host_label(str(self.base_url))} (the "
                         f"config's base_url): list that host in {ALLOWED_HOSTS_ENV} to send it; see docs/security.md")
        logger.warning("uniner.OpenAI.v1: %s", self.withheld)
        return "EMPTY"

    @property
    def model_id(self) -> str:
        return f"openai:{self.base_url}:{self.name}|" + describe(
            {"endpoint": self.endpoint, "max_new_tokens": self.max_new_tokens,
             **self.prompter.describe(), "system": self.template.system}
        )

    @property
    def tokenizer(self) -> Any:
        """The server model's tokenizer (`tokenizer` setting), or None."""
        if self.tokenizer_name and self._tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name)
            self._encoder = PromptEncoder(tokenizer)  # first: `prompt` reads the pair from many threads
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def capacity(self) -> Optional[int]:
        """Requests in flight at once: a call with fewer leaves the server idle."""
        return self.concurrency

    def token_offsets(self, text: str) -> List[Tuple[int, int]]:
        tokenizer = self.tokenizer
        if tokenizer is not None:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=True)
            return [tuple(o) for o in enc["offset_mapping"]]
        return approx_token_offsets(text)

    def prompt(self, query: Query) -> Union[str, List[int]]:
        """The completions prompt: its text, or its token ids where the passage holds a special-token string."""
        text = self.template.render(query.passage, query.entity_type, query.label_set)
        span = self.template.passage_span(query.passage, query.label_set)
        if self.tokenizer is not None and self._encoder is not None:
            return self._encoder(text, [span]) if self._encoder.unsafe(text, [span]) else text
        self._warn_control(query.passage)
        return text

    def _warn_control(self, passage: str) -> None:
        if self.eos and self.eos in passage and not self._warned:
            self._warned = True
            logger.warning("a passage holds %r: the server may read it as a control token (set `tokenizer` "
                           "and use the completions endpoint to send such prompts as token ids)", self.eos)

    def messages(self, query: Query) -> list:
        return self.template.chat_turns(query.passage, query.entity_type, query.label_set)

    def __call__(self, queries: Sequence[Query], *, mark_forced: bool = False) -> List[Generation]:
        """One request per query; `mark_forced` is ignored (a server's answers are never forced)."""
        if not queries:
            return []
        self.tokenizer  # noqa: B018 -- loaded once here, not by each request thread
        return ask_concurrently(self._ask, queries, self.concurrency)

    def _ask(self, query: Query) -> Generation:
        try:
            if self.endpoint == "completions":
                resp = self.client.completions.create(
                    model=self.name,
                    prompt=self.prompt(query),
                    max_tokens=self.max_new_tokens, temperature=0, stop=[self.eos],
                    logprobs=1 if self.logprobs else None,
                )
                choice = resp.choices[0]
                text = choice.text
            else:
                self._warn_control(query.passage)
                resp = self.client.chat.completions.create(
                    model=self.name, messages=self.messages(query),
                    max_tokens=self.max_new_tokens, temperature=0,
                    logprobs=self.logprobs or None,
                )
                choice = resp.choices[0]
                text = choice.message.content or ""
            pieces = logprob_pieces(getattr(choice, "logprobs", None))
            if not isinstance(text, str):
                raise TypeError(f"server returned {type(text).__name__} instead of text")
            if pieces is not None and "".join(p for p, _ in pieces) != text:
                pieces = None  # tokens that do not spell the text cannot place scores
            finish = "length" if getattr(choice, "finish_reason", None) == "length" else "stop"
            return Generation(text=text, token_logprobs=pieces, finish_reason=finish)
        except Exception as err:  # noqa: BLE001 - recorded per query, never lost silently
            refused = self.withheld and getattr(err, "status_code", None) in (401, 403)
            hint = f" ({self.withheld})" if refused else ""
            return Generation(text="", error=request_error(err) + hint)


def logprob_pieces(lp) -> Optional[List[Tuple[str, float]]]:
    """(token, log-prob) pairs from either logprobs shape servers send.

    OpenAI's completions use parallel `tokens`/`token_logprobs` lists; chat
    (and llama.cpp's completions) use a `content` list of objects.
    """
    if lp is None:
        return None
    if isinstance(lp, dict):
        from types import SimpleNamespace

        lp = SimpleNamespace(**lp)
    content = getattr(lp, "content", None)
    if content:
        get = (lambda c, k: c[k]) if isinstance(content[0], dict) else getattr
        return [(get(c, "token"), float(get(c, "logprob"))) for c in content]
    tokens, values = getattr(lp, "tokens", None), getattr(lp, "token_logprobs", None)
    if tokens and values:
        return [(t, float(v) if v is not None else -math.inf) for t, v in zip(tokens, values)]
    return None
