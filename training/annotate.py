"""Passages → teacher annotations (the UniNER teacher prompt, temperature 0).

A real run talks to any OpenAI-compatible server:

    OPENAI_API_KEY=... python -m training.annotate corpus/passages.jsonl \
        --out corpus/annotations.jsonl --model gpt-4o-mini --base-url https://api.openai.com/v1 \
        --price-in 0.00015 --price-out 0.0006

(vLLM: `--base-url http://host:8000/v1 --model <served name>`). For an offline
demo, `--serve-local embedded-base` starts `uniner_spacy.serve.ModelServer` in
this process on 127.0.0.1 (a free port) and uses it as the teacher.

Batch API: `--batch-input requests.jsonl` writes the requests of every passage
not yet cached and stops; after the batch has run, `--batch-results
output.jsonl` reads its answers (no network) and continues as usual.

Answers are cached by content hash (`--cache`), so an interrupted run resumes
without paying twice; failures are never cached and are asked again next run.
Writes one `{"id", "text", "entities": [{"mention", "type", "spans"}], "raw",
"error"}` a line and a stats JSON (usage, cost, every drop counted).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from uniner_spacy.distill.teacher import (
    TeacherAnswer,
    TeacherClient,
    batch_requests,
    clean_pairs,
    parse_tuples,
    read_batch_results,
)
from uniner_spacy.io import jsonl_rows


def read_passages(path: Path, limit: int = 0) -> List[Tuple[str, str]]:
    out = []
    for _, row in jsonl_rows(path):
        out.append((str(row["id"]), row["text"]))
        if limit and len(out) >= limit:
            break
    return out


def start_local(model: str, max_new_tokens: int):
    """`ModelServer` around `uniner.HF.v1` on a free port of 127.0.0.1 (plain generation)."""
    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.serve import ModelServer

    backend = HFBackend(model, batch_size=1, max_new_tokens=max_new_tokens, constrained=False, prefix_sharing=False,
                        stop_at_list_end=True)
    return ModelServer(backend, "127.0.0.1", 0, model_name=model).start()


def annotate(passages: Sequence[Tuple[str, str]], answers: Sequence[TeacherAnswer], definition: bool,
             max_type_words: int, max_type_chars: int) -> Tuple[List[dict], dict]:
    dropped: Counter = Counter()
    parse = Counter()
    rows = []
    types = Counter()
    for (pid, text), ans in zip(passages, answers):
        # nothing run-specific here (cache hits are counted in the stats), so a resumed
        # run writes the same file and the later workflow steps are skipped
        row = {"id": pid, "text": text, "entities": [], "raw": ans.text, "error": ans.error,
               "finish_reason": ans.finish_reason}
        if ans.error is None:
            res = parse_tuples(ans.text)
            parse["pairs"] += len(res.pairs)
            parse["malformed_groups"] += res.malformed
            parse["extra_fields"] += res.extra_fields
            parse["no_list"] += int(not res.found_list)
            parse["truncated"] += int(res.truncated or ans.finish_reason == "length")
            row["entities"] = clean_pairs(text, res.pairs, dropped, max_type_words, max_type_chars,
                                          lower_types=not definition)
            for ent in row["entities"]:
                types[ent["type"]] += 1
        rows.append(row)
    kept = sum(len(r["entities"]) for r in rows)
    stats = {
        "passages": len(rows),
        "answered": sum(1 for r in rows if r["error"] is None),
        "failed": sum(1 for r in rows if r["error"] is not None),
        "passages_with_mentions": sum(1 for r in rows if r["entities"]),
        "mentions_kept": kept,
        "mentions_dropped": sum(dropped.values()),
        "dropped": dict(dropped),
        "parse": dict(parse),
        "types": len(types),
    }
    return rows, stats


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("passages", type=Path, help="JSONL from training.corpus ({id, text})")
    p.add_argument("--out", type=Path, help="annotations JSONL")
    p.add_argument("--stats", type=Path, help="stats JSON (default: <out stem>.stats.json)")
    p.add_argument("--model", default="gpt-3.5-turbo", help="the teacher's model name on the server")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: the openai client's)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    p.add_argument("--serve-local", metavar="MODEL", help="start a local ModelServer for MODEL and use it")
    p.add_argument("--definition", action="store_true", help="the definition variant of the teacher prompt")
    p.add_argument("--limit", type=int, default=0, help="first N passages only")
    p.add_argument("--max-tokens", type=int, default=1024, help="completion tokens per answer")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--workers", type=int, default=8, help="concurrent requests")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--max-retries", type=int, default=5, help="retries on 429/5xx/time-out (exponential back-off)")
    p.add_argument("--cache", type=Path, default=Path(".train/teacher_cache.sqlite"))
    p.add_argument("--price-in", type=float, default=0.0, help="price per 1k prompt tokens")
    p.add_argument("--price-out", type=float, default=0.0, help="price per 1k completion tokens")
    p.add_argument("--max-type-words", type=int, default=None,
                   help="drop longer types (default 5; 40 with --definition)")
    p.add_argument("--max-type-chars", type=int, default=None,
                   help="drop longer types (default 50; 300 with --definition)")
    p.add_argument("--batch-input", type=Path, help="write Batch API requests for uncached passages and stop")
    p.add_argument("--batch-results", type=Path, help="read a Batch API output file instead of calling a server")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even when some passages failed (default: exit 1 so a workflow re-runs the step)")
    args = p.parse_args(argv)
    if not args.batch_input and not args.out:
        p.error("--out is required (unless --batch-input)")
    words = args.max_type_words or (40 if args.definition else 5)
    chars = args.max_type_chars or (300 if args.definition else 50)

    passages = read_passages(args.passages, args.limit)
    server = None
    base_url, model, key = args.base_url, args.model, os.environ.get(args.api_key_env)
    if args.serve_local:
        print(f"starting a local teacher: {args.serve_local}", file=sys.stderr, flush=True)
        server = start_local(args.serve_local, args.max_tokens)
        base_url, model, key = server.url, args.serve_local, "local"
    client = TeacherClient(model, base_url=base_url, api_key=key, definition=args.definition,
                           temperature=args.temperature, max_tokens=args.max_tokens, timeout=args.timeout,
                           max_retries=args.max_retries, workers=args.workers, cache_path=args.cache,
                           price_in=args.price_in, price_out=args.price_out, progress=not args.no_progress,
                           # a local server gets a new port each run: name it by what it serves, so the cache resumes
                           server_id=f"local:{args.serve_local}" if args.serve_local else None)
    started = time.time()
    try:
        if args.batch_input:
            rows = batch_requests(client, passages)
            args.batch_input.parent.mkdir(parents=True, exist_ok=True)
            with args.batch_input.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(json.dumps({"batch_requests": len(rows), "cached": len(passages) - len(rows)}))
            return {"batch_requests": len(rows)}
        if args.batch_results:
            found = read_batch_results(args.batch_results)
            answers = []
            for pid, text in passages:
                ans = client.cached(pid, text)
                if ans is None:
                    ans = found.get(pid) or TeacherAnswer(id=pid, text="", error="BatchMissing: no result")
                    client.record(ans, client.key(text))
                else:
                    client.record(ans)
                answers.append(ans)
        else:
            answers = client.annotate(passages)
    finally:
        if server is not None:
            server.shutdown()
    rows, stats = annotate(passages, answers, args.definition, words, chars)
    stats["usage"] = client.usage.to_dict()
    stats["seconds"] = round(time.time() - started, 2)
    stats["teacher"] = {"model": model, "base_url": base_url if not args.serve_local else "local",
                        "definition": args.definition, "temperature": args.temperature}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    stats_path = args.stats or args.out.with_suffix(".stats.json")
    stats_path.write_text(json.dumps(stats, indent=1))
    print(json.dumps({k: stats[k] for k in ("passages", "failed", "mentions_kept", "mentions_dropped", "types")}
                     | {"requests": stats["usage"]["requests"], "cache_hits": stats["usage"]["cache_hits"],
                        "cost": stats["usage"]["cost"]}))
    if stats["failed"]:
        print(f"{stats['failed']} passages failed (not cached); run again to retry them", file=sys.stderr)
        if not args.allow_failures:
            raise SystemExit(1)
    return stats


if __name__ == "__main__":
    main()
