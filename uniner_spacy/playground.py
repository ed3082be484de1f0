"""A page to try the model on your own sentences: `uniner-spacy playground` (docs/review.md).

A person types or pastes a text, names labels (with optional descriptions) and sees the entities
highlighted, one colour per label (`palette.label_colors`, as in `annotate … out.html`), each with its
score, the runners-up (the other candidates for the same words) on hover, and the time taken. It
runs the same pipeline as the Python API and `annotate` (`build_nlp`), so with the default config it
works offline on the embedded student. The page is served from this module, with no file or script
from elsewhere.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .errors import ConfigError, InputError, UninerError
from .palette import label_colors

logger = logging.getLogger(__name__)

MAX_CHARS = 5000  # one request answers in seconds on a CPU; longer documents go through `annotate`
MAX_LABELS = 20
MAX_BODY = 1 << 20
RUNNERS_UP = 3


class Playground:
    """The pipeline behind the page: one `uniner` pipe, its labels set for each request in turn."""

    def __init__(self, nlp, max_chars: int = MAX_CHARS, max_labels: int = MAX_LABELS):
        from .pipeline.build import uniner_pipe

        self.nlp, self.pipe = nlp, uniner_pipe(nlp)
        self.max_chars, self.max_labels = max_chars, max_labels
        self.lock = threading.Lock()  # the labels live on the pipe: one request at a time

    @classmethod
    def build(cls, config: Optional[Union[str, Path]] = None, backend: Optional[Dict[str, object]] = None,
              **settings: Any) -> "Playground":
        from .pipeline.build import build_nlp

        page = cls(build_nlp(["entity"], config, backend=backend), **settings)
        page.nlp("A first question loads the model.")  # so the page's first time taken is the model's own
        return page

    def check(self, text: Any, labels: Any) -> Tuple[str, Dict[str, Optional[str]]]:
        if not isinstance(text, str) or not text.strip():
            raise InputError("Type or paste a text to look for entities in.")
        if len(text) > self.max_chars:
            raise InputError(f"The text has {len(text):,} characters; the playground takes up to {self.max_chars:,}. "
                             "Shorten it, or annotate long documents with `uniner-spacy annotate`.")
        if isinstance(labels, dict):
            items = list(labels.items())
        elif isinstance(labels, list):
            items = [(l.get("label"), l.get("description")) if isinstance(l, dict) else (l, None) for l in labels]
        else:
            raise InputError("labels must be a list of names or of {label, description} objects")
        label_map: Dict[str, Optional[str]] = {}
        for label, description in items:
            if not isinstance(label, str) or not isinstance(description, (str, type(None))):
                raise InputError(f"a label is a name with an optional description, not {label!r}: {description!r}")
            if label.strip():
                label_map[label.strip()] = (description or "").strip() or None
        if not label_map:
            raise InputError("Name at least one label to look for (one per line, e.g. person), "
                             "with an optional description after a colon.")
        if len(label_map) > self.max_labels:
            raise InputError(f"{len(label_map)} labels is more than the playground asks for at once "
                             f"({self.max_labels}); each label is one question per passage.")
        return text, label_map

    def extract(self, text: Any, labels: Any) -> Dict[str, Any]:
        """The entities of `text` for `labels`, with scores, runners-up, colours and the time taken."""
        text, label_map = self.check(text, labels)
        with self.lock:
            self.pipe.initialize(labels=label_map)
            started = time.perf_counter()
            doc = self.nlp(text)
            seconds = time.perf_counter() - started
        stats = doc._.uniner_stats or {}
        if stats.get("backend_errors") or stats.get("errors"):
            # never "no entities" because something failed
            raise UninerError("The model failed on this text: " + "; ".join(stats.get("errors", [])[:2]))
        group = doc.spans.get(self.pipe.spans_key, [])
        scores = getattr(group, "attrs", {}).get("scores") or [s._.uniner_score for s in group]
        candidates = [(s.start_char, s.end_char, s.label_, float(x)) for s, x in zip(group, scores)]
        colors = label_colors(label_map)
        entities = []
        for e in doc.ents:
            key = (e.start_char, e.end_char, e.label_)
            others = sorted((c for c in candidates if c[:3] != key and c[0] < e.end_char and e.start_char < c[1]),
                            key=lambda c: -c[3])[:RUNNERS_UP]
            entities.append({"start": e.start_char, "end": e.end_char, "text": e.text, "label": e.label_,
                             "score": e._.uniner_score, "color": colors.get(e.label_),
                             "runners_up": [{"text": text[s:t], "label": l, "score": x} for s, t, l, x in others]})
        return {"entities": entities, "colors": colors, "seconds": round(seconds, 3),
                "queries": stats.get("queries", 0), "labels": list(label_map)}


class Handler(BaseHTTPRequestHandler):
    server: "PlaygroundServer"

    def log_message(self, fmt, *args):  # quiet: the page is for one person at a time
        logger.debug(fmt, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Dict[str, Any]) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf8"), "application/json; charset=utf-8")

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, PAGE.encode("utf8"), "text/html; charset=utf-8")
        elif self.path == "/api/health":
            self._json(HTTPStatus.OK, {"ok": True, "model": self.server.model_name})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

    def do_POST(self):
        if self.path != "/api/extract":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"The request is over {MAX_BODY:,} bytes."})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise InputError("send a JSON object with text and labels")
            result = self.server.playground.extract(body.get("text"), body.get("labels", []))
        except (ValueError, InputError, ConfigError) as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
            return
        except UninerError as err:
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(err)})
            return
        except Exception as err:  # the page shows what went wrong; the server stays up
            logger.exception("playground request failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"The pipeline failed: {err}"})
            return
        self._json(HTTPStatus.OK, result)


class PlaygroundServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, playground: Playground, host: str = "127.0.0.1", port: int = 0, model_name: str = "uniner"):
        from .serve import is_loopback

        super().__init__((host, port), Handler)
        self.playground, self.model_name = playground, model_name
        if not is_loopback(host):
            logger.warning("the playground listens on %s, beyond this machine: anyone who reaches it can run "
                           "the model", host)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> "PlaygroundServer":
        threading.Thread(target=self.serve_forever, daemon=True, name="uniner-playground").start()
        return self


def serve_playground(playground: Playground, host: str = "127.0.0.1", port: int = 8001,
                     model_name: str = "uniner") -> PlaygroundServer:
    """Start the page in a background thread; `.url` says where, `.shutdown()` stops it."""
    return PlaygroundServer(playground, host, port, model_name).start()


def parse_label_lines(text: str) -> List[Dict[str, Optional[str]]]:
    """The page's label box in Python: one label a line, `label: description` optional (the page's
    script reads it the same way)."""
    out = []
    for line in text.splitlines():
        label, _, description = line.partition(":")
        if label.strip():
            out.append({"label": label.strip(), "description": description.strip() or None})
    return out


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>uniner-spacy playground</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
header { background: #2d3a4a; color: #fff; padding: 10px 24px; }
header h1 { font-size: 18px; margin: 0; } header span { opacity: .75; font-size: 13px; }
main { display: grid; grid-template-columns: minmax(300px, 1fr) 260px; gap: 16px; padding: 16px 24px; }
textarea { width: 100%; box-sizing: border-box; font: inherit; padding: 8px; border: 1px solid #bbb;
  border-radius: 6px; }
#text { height: 140px; } #labels { height: 140px; }
label.head { font-weight: 600; display: block; margin: 0 0 4px; }
.hint { color: #666; font-size: 12px; }
button { font: inherit; padding: 6px 18px; border: 0; border-radius: 6px; background: #2d6cdf; color: #fff;
  cursor: pointer; margin-top: 8px; }
#message { margin: 8px 0; color: #a40000; font-weight: 600; min-height: 1.5em; }
#result { grid-column: 1 / span 2; background: #fff; border: 1px solid #ddd; border-radius: 6px;
  padding: 14px 18px; line-height: 2.4; white-space: pre-wrap; min-height: 60px; }
mark.ent { position: relative; padding: 2px 5px; border-radius: 5px; color: #111; }
mark.ent .tag { font-size: 11px; font-weight: 700; margin-left: 5px; text-transform: uppercase; }
mark.ent .score { font-size: 11px; margin-left: 4px; opacity: .8; }
mark.ent .runners { display: none; position: absolute; left: 0; top: 100%; z-index: 2; background: #222;
  color: #fff; font-size: 12px; line-height: 1.4; padding: 6px 8px; border-radius: 5px; white-space: nowrap; }
mark.ent:hover .runners { display: block; }
#meta { grid-column: 1 / span 2; color: #555; font-size: 13px; }
#legend span { display: inline-block; padding: 1px 8px; border-radius: 4px; margin: 0 6px 4px 0; font-size: 12px; }
</style></head>
<body>
<header><h1>uniner-spacy playground</h1>
<span>open named entity recognition: name the labels, see what the model finds</span></header>
<main>
<div><label class="head" for="text">Text</label>
<textarea id="text" placeholder="Type or paste a text"></textarea>
<div class="hint"><span id="count">0</span> characters</div></div>
<div><label class="head" for="labels">Labels</label>
<textarea id="labels" placeholder="person&#10;organization: a company or institution&#10;location"></textarea>
<div class="hint">one a line; <code>label: description</code> optional</div>
<button id="run">Find entities</button></div>
<div id="message" role="alert"></div><div></div>
<div id="result"></div>
<div id="meta"><span id="time"></span> <span id="legend"></span></div>
</main>
<script>
const $ = (id) => document.getElementById(id);
function parseLabels(text) {
  const out = [];
  for (const line of text.split("\\n")) {
    const cut = line.indexOf(":");
    const label = (cut < 0 ? line : line.slice(0, cut)).trim();
    const description = cut < 0 ? "" : line.slice(cut + 1).trim();
    if (label) out.push({label: label, description: description || null});
  }
  return out;
}
function fmt(x) { return (x === null || x === undefined) ? "–" : Number(x).toFixed(2); }
function render(text, data) {
  const box = $("result"); box.textContent = "";
  let at = 0;
  for (const e of data.entities) {
    box.appendChild(document.createTextNode(text.slice(at, e.start)));
    const mark = document.createElement("mark");
    mark.className = "ent"; mark.dataset.label = e.label; mark.style.background = e.color;
    mark.appendChild(document.createTextNode(text.slice(e.start, e.end)));
    const tag = document.createElement("span"); tag.className = "tag"; tag.textContent = e.label;
    const score = document.createElement("span"); score.className = "score"; score.textContent = fmt(e.score);
    const runners = document.createElement("span"); runners.className = "runners";
    runners.textContent = e.runners_up.length
      ? "runners-up: " + e.runners_up.map(r => r.label + " " + fmt(r.score) + " (" + r.text + ")").join(", ")
      : "no runner-up";
    mark.append(tag, score, runners); box.appendChild(mark);
    at = e.end;
  }
  box.appendChild(document.createTextNode(text.slice(at)));
  $("time").textContent = data.entities.length + " entities in " + data.seconds.toFixed(2) + " s (" +
    data.queries + " questions) ·";
  const legend = $("legend"); legend.textContent = "";
  for (const [label, color] of Object.entries(data.colors)) {
    const s = document.createElement("span"); s.style.background = color; s.textContent = label;
    legend.appendChild(s);
  }
}
async function run() {
  const text = $("text").value, labels = parseLabels($("labels").value);
  $("message").textContent = ""; $("time").textContent = "working…";
  document.body.dataset.state = "busy";
  try {
    const response = await fetch("/api/extract", {method: "POST", headers: {"Content-Type": "application/json"},
                                                 body: JSON.stringify({text: text, labels: labels})});
    const data = await response.json();
    if (!response.ok) { $("message").textContent = data.error; $("time").textContent = "";
                        $("result").textContent = ""; }
    else render(text, data);
  } catch (err) {
    $("message").textContent = "The playground server did not answer: " + err;
  }
  document.body.dataset.state = "done";
}
$("run").addEventListener("click", run);
$("text").addEventListener("input", () => { $("count").textContent = $("text").value.length; });
</script></body></html>
"""
