"""Data-loss scenarios of `annotate`'s outputs, as rows for benchmarks/faults.py's table.

Each runs the real CLI (a separate process per run) and counts what an output that was complete
lost: a rerun while the backend is down (`.spacy`, `--no-resume`), input and output one file, two
runs on one output at once, texts that can never be annotated. `lost` counts complete documents (or
input rows) gone; the other keys are faults.py's (`exit_code`, `complete`, `flagged`).

    from output_faults import output_scenarios
    results += output_scenarios(root, src, cfg, n, stop=server.stop, start=server.start)

`stop`/`start` take the backend down and bring it back (the fault server's); `cfg` is a config over
it that does not retry (faults.py's `plain.cfg`).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List


def command(src: Path, out: Path, cfg: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "uniner_spacy.cli", "annotate", str(src), str(out), "--config", str(cfg),
            "--batch-size", "8", *extra]


def run(src: Path, out: Path, cfg: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_API_KEY": "none", "TQDM_DISABLE": "1"}
    return subprocess.run(command(src, out, cfg, *extra), capture_output=True, text=True, timeout=timeout, env=env)


def ok_rows(path: Path) -> Dict[int, str]:
    """`_index` → the row's text, for the "ok" rows of a .jsonl output."""
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
    return {r["_index"]: line for r, line in zip(rows, path.read_text(encoding="utf8").splitlines())
            if r.get("_status") == "ok"}


def docbin_size(path: Path) -> int:
    import spacy
    from spacy.tokens import DocBin

    return len(list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))) if path.is_file() else 0


def output_scenarios(root: Path, src: Path, cfg: Path, n: int, *, stop: Callable[[], None],
                     start: Callable[[], None]) -> List[dict]:
    root = root / "outputs"
    root.mkdir(parents=True, exist_ok=True)
    return [docbin_rerun_down(root, src, cfg, n, stop, start), no_resume_down(root, src, cfg, n, stop, start),
            *(same_path(root, src, cfg, n, suffix) for suffix in (".jsonl", ".html")),
            two_runs_at_once(root, src, cfg, n), invalid_texts(root, src, cfg, n)]


def docbin_rerun_down(root: Path, src: Path, cfg: Path, n: int, stop, start) -> dict:
    out = root / "good.spacy"
    first = run(src, out, cfg)
    before = docbin_size(out)
    stop()
    try:
        again = run(src, out, cfg, "--max-failed-batches", "0")
    finally:
        start()
    after = docbin_size(out)
    return {"scenario": "docbin_rerun_down", "fault": "a complete .spacy, then the same command with the backend "
            "down", "docs_in": n, "exit_code": again.returncode, "first_exit_code": first.returncode,
            "complete": after, "flagged": n - after, "lost": before - after}


def no_resume_down(root: Path, src: Path, cfg: Path, n: int, stop, start) -> dict:
    out = root / "good.jsonl"
    run(src, out, cfg)
    before = ok_rows(out)
    stop()
    try:
        failed = run(src, out, cfg, "--no-resume", "--max-failed-batches", "0")
    finally:
        start()
    kept = ok_rows(out)
    pending = root / "good.pending.jsonl"
    flagged = n - len(ok_rows(pending))  # this run's rows, beside the output until they are complete
    reruns = 0
    while reruns < 3:
        reruns += 1
        if run(src, out, cfg, "--no-resume").returncode == 0:
            break
    final = ok_rows(out)
    return {"scenario": "no_resume_down", "fault": "--no-resume over a complete .jsonl with the backend down",
            "docs_in": n, "exit_code": failed.returncode, "complete": len(final), "flagged": flagged,
            "lost": len(set(before) - set(kept)), "runs_to_complete": reruns if len(final) == n else None}


def same_path(root: Path, src: Path, cfg: Path, n: int, suffix: str) -> dict:
    both = root / f"same{suffix}"
    shutil.copyfile(src, both)
    before = both.read_bytes()
    result = run(both, both, cfg)
    return {"scenario": f"same_path{suffix.replace('.', '_')}", "fault": f"input and output one {suffix} file",
            "docs_in": n, "exit_code": result.returncode, "complete": 0, "flagged": 0,
            "lost": 0 if both.read_bytes() == before else n, "message": result.stderr.strip()[-200:]}


def two_runs_at_once(root: Path, src: Path, cfg: Path, n: int) -> dict:
    out = root / "shared.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": "none", "TQDM_DISABLE": "1"}
    procs = [subprocess.Popen(command(src, out, cfg), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    lines = [line for line in out.read_text(encoding="utf8").splitlines() if line.strip()] if out.is_file() else []
    done = ok_rows(out)
    return {"scenario": "two_runs_at_once", "fault": "two processes annotating into one output at once",
            "docs_in": n, "exit_code": max(codes), "exit_codes": codes, "complete": len(done),
            "flagged": n - len(done), "lost": n - len(done), "duplicates": len(lines) - len({json.loads(line)["_index"]
                                                                                           for line in lines})}


def invalid_texts(root: Path, src: Path, cfg: Path, n: int) -> dict:
    rows = [json.loads(line) for line in src.read_text(encoding="utf8").splitlines() if line.strip()]
    for k, bad in zip(range(0, len(rows), max(1, len(rows) // 3)), (None, 7, ["a", "list"])):
        rows[k]["text"] = bad
    bad_src = root / "invalid.jsonl"
    bad_src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    out = root / "invalid-out.jsonl"
    result = run(bad_src, out, cfg)
    written = [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()] if out.is_file() else []
    return {"scenario": "invalid_texts", "fault": "3 texts null, a number, a list", "docs_in": n,
            "exit_code": result.returncode, "complete": sum(r["_status"] == "ok" for r in written),
            "flagged": sum(r["_status"] == "invalid" for r in written), "lost": n - len(written),
            "says_rerun": "rerun the same command" in result.stderr}
