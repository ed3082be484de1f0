"""Teacher annotation for targeted distillation: ask, cache, parse, clean.

The teacher (any OpenAI-compatible chat server: OpenAI, vLLM, llama.cpp, our
own `serve.ModelServer`) gets the exact UniNER teacher prompt
(`prompts.teacher_messages`) at temperature 0 and answers with a list of
`("mention", "type")` tuples. This module holds the reusable parts:

- `parse_tuples`: a tolerant reader of that answer (Python tuples, JSON pairs,
  single quotes, quotes inside mentions, truncated output), counting what it
  could not read instead of failing;
- `clean_pairs`: keeps mentions that occur in the passage and sane types, with
  a count per reason for everything dropped;
- `TeacherCache` / `TeacherClient`: a content-hash SQLite cache (`cache.AnswerCache`'s
  table, best effort) and a client with usage and cost accounting over the
  `uniner.OpenAI.v1` backend's client, retries and bounded concurrency
  (`backends.openai`); each answer is cached in its worker as soon as it arrives
  and an interrupted run sends nothing more, so a resumed run never pays twice;
- `batch_requests` / `read_batch_results`: the OpenAI Batch API files.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..backends.cache import AnswerCache
from ..backends.openai import ask_concurrently, openai_client, request_error
from ..errors import ConfigError
from ..io import jsonl_rows, text_sha256
from ..pipeline.align import find_mentions
from ..questions.parsing import read_string
from ..questions.prompts import TEMPLATE_VERSION, teacher_messages
from ..types import label_key

logger = logging.getLogger(__name__)

TEACHER_VERSION = "teacher-2"  # bump when the request, its key or the cached record changes
OPENAI_URL = "https://api.openai.com/v1"  # the `openai` client's default server
MAX_TYPE_WORDS = 5
MAX_TYPE_CHARS = 50


# ---------------------------------------------------------------------------
# parsing


@dataclass
class TupleParse:
    """What `parse_tuples` read: the pairs, and how much it had to forgive."""

    pairs: List[Tuple[str, str]]
    found_list: bool = False  # a `[` was there at all
    truncated: bool = False  # the outer list (or the last tuple) never closed
    malformed: int = 0  # groups that were not a (mention, type) pair
    extra_fields: int = 0  # groups with more than two strings (first two kept)


_CLOSERS = ",)]}:\n"
_ESCAPE = re.compile(r"\\(.)", re.S)


def _closes_before_separator(text: str, j: int) -> bool:
    """The quote at `text[j]` ends its string only before a separator (`,` `)` `]` ...) or the end.

    So quotes inside a mention (`"the "Big Apple""`, `'O'Brien'`) stay in it.
    """
    k = j + 1
    while k < len(text) and text[k] in " \t":
        k += 1
    return k >= len(text) or text[k] in _CLOSERS


def _unescape(body: str, quote: str) -> str:
    """Lenient escapes: `\\n` and `\\t` as in Python, any other escaped character as itself."""
    return _ESCAPE.sub(lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _read_quoted(text: str, i: int) -> Tuple[str, int, bool]:
    """A teacher string at `text[i]` (the quote): (value, next index, closed)."""
    lit, end = read_string(text, i, closes=_closes_before_separator, decode=_unescape)
    return (lit.value, end, True) if lit is not None else ("", end, False)


def parse_tuples(text: str) -> TupleParse:
    """Read `[("entity", "type"), ...]` or `[["entity", "type"], ...]`, tolerantly.

    Text before the first `[` is ignored; an unclosed list or tuple at the end
    (a truncated answer) keeps every complete pair before it; unquoted groups
    `(Paris, city)` are split on their last comma.
    """
    result = TupleParse(pairs=[])
    start = text.find("[")
    if start < 0:
        # a bare sequence of tuples without the list brackets
        start = text.find("(")
        if start < 0:
            return result
        text = "[" + text[start:]
        start = 0
    result.found_list = True
    depth = 0  # 1 = inside the outer list, 2 = inside a group
    strings: List[str] = []
    raw: List[str] = []  # unquoted characters of the current group
    i = start
    n = len(text)
    closed_outer = False
    while i < n:
        ch = text[i]
        if depth >= 2 and ch in "\"'":
            value, i, ok = _read_quoted(text, i)
            if not ok:  # cut inside a string: keep the group only if it already has a pair
                result.truncated = True
                if len(strings) >= 2:
                    _emit(result, strings, "")
                else:
                    result.malformed += 1
                strings = []
                depth = 0
                break
            strings.append(value)
            continue
        if ch in "[(":
            depth += 1
            if depth == 2:
                strings, raw = [], []
            elif depth > 2:
                raw.append(ch)
        elif ch in "])":
            if depth == 2:
                _emit(result, strings, "".join(raw))
                strings, raw = [], []
            elif depth > 2:
                raw.append(ch)
            depth -= 1
            if depth == 0:
                closed_outer = True
                break
        elif depth == 1 and ch in "\"'":
            # a flat list of strings (`["Paris", "city"]` at the top): not pairs
            _, i, _ = _read_quoted(text, i)
            result.malformed += 1
            continue
        elif depth >= 2:
            raw.append(ch)
        i += 1
    if not closed_outer:
        result.truncated = True
        if depth >= 2 and len(strings) >= 2:  # `("Paris", "city"` cut before `)`
            _emit(result, strings, "")
    return result


def _emit(result: TupleParse, strings: List[str], raw: str) -> None:
    if len(strings) >= 2:
        result.pairs.append((strings[0], strings[1]))
        if len(strings) > 2:
            result.extra_fields += 1
        return
    if not strings:
        parts = raw.rsplit(",", 1)
        if len(parts) == 2 and parts[0].strip() and parts[1].strip():
            result.pairs.append((parts[0].strip(), parts[1].strip()))
            return
    result.malformed += 1


# ---------------------------------------------------------------------------
# cleaning


def clean_pairs(
    passage: str,
    pairs: Iterable[Tuple[str, str]],
    dropped: Optional[Counter] = None,
    max_type_words: int = MAX_TYPE_WORDS,
    max_type_chars: int = MAX_TYPE_CHARS,
    lower_types: bool = True,
) -> List[Dict[str, object]]:
    """Pairs → entities with character offsets; every drop counted by reason.

    Reasons: `empty_mention`, `empty_type`, `long_type`, `not_in_passage`,
    `duplicate`. A mention that occurs several times gets every occurrence
    (word-bounded ones preferred: `align.find_mentions`).
    """
    dropped = dropped if dropped is not None else Counter()
    seen = set()
    out: List[Dict[str, object]] = []
    for mention, etype in pairs:
        mention = " ".join(str(mention).split())
        # a teacher's type ends in a full stop now and then (`person.`)
        etype = label_key(str(etype)).strip(" .") if lower_types else " ".join(str(etype).split())
        if not mention:
            dropped["empty_mention"] += 1
            continue
        if not etype:
            dropped["empty_type"] += 1
            continue
        if len(etype.split()) > max_type_words or len(etype) > max_type_chars:
            dropped["long_type"] += 1
            continue
        spans = find_mentions(passage, mention)
        if not spans and mention != str(mention).strip():
            spans = find_mentions(passage, str(mention).strip())
        if not spans:
            dropped["not_in_passage"] += 1
            continue
        key = (passage[spans[0][0] : spans[0][1]], etype)
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        out.append({"mention": key[0], "type": etype, "spans": [list(s) for s in spans]})
    return out


# ---------------------------------------------------------------------------
# cache


class TeacherCache(AnswerCache):
    """`AnswerCache`'s table (WAL, checksums, damaged files set aside, best-effort writes) with JSON records."""

    @staticmethod
    def request_key(server: str, model: str, messages: Sequence[dict], settings: Dict[str, object]) -> str:
        """The server too: one model name on two servers (an alias, other weights) is two teachers."""
        return text_sha256(json.dumps([TEACHER_VERSION, TEMPLATE_VERSION, server, model, list(messages), settings],
                                  sort_keys=True, ensure_ascii=False))

    def get(self, key: str) -> Optional[dict]:
        value = self.read([key]).get(key)
        if value is None:
            return None
        try:
            record = json.loads(value)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "text" not in record:
            self.corrupt_rows += 1
            return None
        return record

    def put(self, key: str, record: dict) -> bool:
        return self.write({key: json.dumps(record, ensure_ascii=False)})


# ---------------------------------------------------------------------------
# client


@dataclass
class Usage:
    requests: int = 0
    cache_hits: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # tokens of answers read from the cache (not paid again)
    cached_completion_tokens: int = 0
    price_in: float = 0.0  # per 1k prompt tokens
    price_out: float = 0.0  # per 1k completion tokens
    error_kinds: Counter = field(default_factory=Counter)

    @property
    def cost(self) -> float:
        return self.prompt_tokens / 1000 * self.price_in + self.completion_tokens / 1000 * self.price_out

    @property
    def saved(self) -> float:
        return (self.cached_prompt_tokens / 1000 * self.price_in
                + self.cached_completion_tokens / 1000 * self.price_out)

    def to_dict(self) -> Dict[str, object]:
        return {
            "requests": self.requests, "cache_hits": self.cache_hits, "errors": self.errors,
            "error_kinds": dict(self.error_kinds),
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "cached_completion_tokens": self.cached_completion_tokens,
            "price_in_per_1k": self.price_in, "price_out_per_1k": self.price_out,
            "cost": round(self.cost, 6), "saved_by_cache": round(self.saved, 6),
        }


@dataclass
class TeacherAnswer:
    id: str
    text: str  # the raw answer ("" on error)
    usage: Dict[str, int] = field(default_factory=dict)
    finish_reason: Optional[str] = None
    cached: bool = False
    error: Optional[str] = None


class TeacherClient:
    """Asks an OpenAI-compatible chat server the teacher prompt, with a persistent cache.

    Concurrency is bounded by `workers` threads and retries follow the
    `uniner.OpenAI.v1` backend's policy (`backends.openai.openai_client`:
    `max_retries`, `timeout`). Failed requests are reported,
    never cached, so the next run asks them again. `server_id` names the
    server in cache keys (default: `base_url`); give a stable one to a server
    whose URL changes from run to run (a local one on a free port).
    """

    def __init__(
        self,
        model: str,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        definition: bool = False,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        timeout: float = 120.0,
        max_retries: int = 5,
        workers: int = 4,
        cache_path: Optional[Union[str, Path]] = None,
        price_in: float = 0.0,
        price_out: float = 0.0,
        progress: bool = True,
        server_id: Optional[str] = None,
    ):
        if workers < 1:
            raise ConfigError(f"workers must be ≥ 1, got {workers}")
        self.model = model
        self.base_url = base_url
        self.server_id = server_id
        self.api_key = api_key
        self.definition = definition
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.workers = workers
        self.cache = TeacherCache(cache_path) if cache_path else None
        self.usage = Usage(price_in=price_in, price_out=price_out)
        self.progress = progress
        self._lock = threading.Lock()
        self._client = None

    @property
    def settings(self) -> Dict[str, object]:
        """Everything besides model and messages that changes the answer (part of the key)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def messages(self, passage: str) -> List[dict]:
        return teacher_messages(passage, definition=self.definition)

    @property
    def server(self) -> str:
        """The server as the cache knows it: `server_id`, else the URL the `openai` client will use."""
        url = self.server_id or self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        return url.rstrip("/")

    def key(self, passage: str) -> str:
        return TeacherCache.request_key(self.server, self.model, self.messages(passage), self.settings)

    def body(self, passage: str) -> Dict[str, object]:
        return {"model": self.model, "messages": self.messages(passage), **self.settings}

    @property
    def client(self):
        if self._client is None:
            self._client = openai_client(self.base_url, self.api_key or "none", timeout=self.timeout,
                                         max_retries=self.max_retries)
        return self._client

    def _ask(self, pid: str, passage: str) -> TeacherAnswer:
        try:
            response = self.client.chat.completions.create(**self.body(passage))
        except Exception as err:  # noqa: BLE001 - reported per passage, retried next run
            return TeacherAnswer(id=pid, text="", error=request_error(err)[:300])
        choice = response.choices[0]
        usage = response.usage
        counts = {"prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
                  "completion_tokens": getattr(usage, "completion_tokens", 0) or 0}
        return TeacherAnswer(id=pid, text=choice.message.content or "", usage=counts,
                             finish_reason=choice.finish_reason)

    def _fetch(self, pid: str, passage: str, key: str) -> TeacherAnswer:
        """One request, accounted and cached in the worker, so an answer is kept once it has arrived."""
        answer = self._ask(pid, passage)
        self.record(answer, key)
        return answer

    def record(self, answer: TeacherAnswer, key: Optional[str] = None) -> None:
        """Account for one answer (and store a fresh one in the cache, best effort)."""
        with self._lock:
            if answer.error is not None:
                self.usage.errors += 1
                self.usage.error_kinds[answer.error.split(":", 1)[0]] += 1
                return
            if answer.cached:
                self.usage.cache_hits += 1
                self.usage.cached_prompt_tokens += answer.usage.get("prompt_tokens", 0)
                self.usage.cached_completion_tokens += answer.usage.get("completion_tokens", 0)
                return
            self.usage.requests += 1
            self.usage.prompt_tokens += answer.usage.get("prompt_tokens", 0)
            self.usage.completion_tokens += answer.usage.get("completion_tokens", 0)
        if self.cache is not None and key is not None:
            self.cache.put(key, {"text": answer.text, "usage": answer.usage, "finish_reason": answer.finish_reason})

    def cached(self, pid: str, passage: str) -> Optional[TeacherAnswer]:
        if self.cache is None:
            return None
        hit = self.cache.get(self.key(passage))
        if hit is None:
            return None
        return TeacherAnswer(id=pid, text=hit["text"], usage=hit.get("usage", {}),
                             finish_reason=hit.get("finish_reason"), cached=True)

    def annotate(self, passages: Sequence[Tuple[str, str]]) -> List[TeacherAnswer]:
        """(id, passage) pairs → answers in the same order; cache first, then the server."""
        out: List[Optional[TeacherAnswer]] = [None] * len(passages)
        todo: List[int] = []
        for i, (pid, text) in enumerate(passages):
            hit = self.cached(pid, text)
            if hit is not None:
                out[i] = hit
                self.record(hit)
            else:
                todo.append(i)
        bar = _progress(len(passages), len(passages) - len(todo), self.progress)

        def arrived(j: int, answer: TeacherAnswer) -> None:
            out[todo[j]] = answer
            if bar is not None:
                bar.update(1)
                bar.set_postfix(tokens=self.usage.prompt_tokens + self.usage.completion_tokens,
                                cost=f"{self.usage.cost:.4f}", errors=self.usage.errors)

        try:
            ask_concurrently(lambda i: self._fetch(*passages[i], self.key(passages[i][1])), todo, self.workers,
                             arrived)
        finally:
            if bar is not None:
                bar.close()
        return out  # type: ignore[return-value]


def _progress(total: int, done: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, initial=done, desc="teacher", unit="passage")


# ---------------------------------------------------------------------------
# OpenAI Batch API files


def batch_requests(client: TeacherClient, passages: Sequence[Tuple[str, str]]) -> List[dict]:
    """One `/v1/chat/completions` request per passage not yet in the cache."""
    rows = []
    for pid, text in passages:
        if client.cached(pid, text) is not None:
            continue
        rows.append({"custom_id": pid, "method": "POST", "url": "/v1/chat/completions",
                     "body": client.body(text)})
    return rows


def read_batch_results(path: Union[str, Path]) -> Dict[str, TeacherAnswer]:
    """The Batch API output JSONL → answers by custom_id (errors kept as errors)."""
    out: Dict[str, TeacherAnswer] = {}
    for _, item in jsonl_rows(path):
        pid = str(item.get("custom_id"))
        response = item.get("response") or {}
        body = response.get("body") or {}
        status = response.get("status_code", 200)
        if item.get("error") or status != 200 or not body.get("choices"):
            err = item.get("error") or body.get("error") or {"message": f"status {status}"}
            out[pid] = TeacherAnswer(id=pid, text="", error=f"BatchError: {json.dumps(err)[:200]}")
            continue
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        out[pid] = TeacherAnswer(
            id=pid, text=(choice.get("message") or {}).get("content") or "",
            usage={"prompt_tokens": usage.get("prompt_tokens", 0),
                   "completion_tokens": usage.get("completion_tokens", 0)},
            finish_reason=choice.get("finish_reason"))
    return out


def passage_id(text: str) -> str:
    return "p-" + text_sha256(text)[:12]
