"""`uniner-spacy annotate --ray`: one pipeline per Ray worker, output in input order.

Ray Data holds the input rows and feeds an actor pool; each actor builds the
pipeline once (one per GPU, or per `threads` CPU cores) and annotates whole
`nlp.pipe` batches with `runs.annotate_batch`, as the one-process run does. The
driver writes the rows in input order as shards of `shard_size` documents
(`part-00000.jsonl`, ...), each a `runs.RunLog` over its range of positions,
with the run record in `run.json`. A rerun validates every shard (each line a
row, `_index` running over the shard's range, every row "ok") and annotates
only the documents a shard lacks or did not finish. The output's lock, `--no-resume`'s pending
folder and the closing notes are runs.py's, as for a `.jsonl` output.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import ConfigError, InternalError, ModelNotFound
from .runs import Breaker, Echo, RunLog, RunRecord, Summary, annotate_batch, choose_target, locked, settle, start_run
from .types import Labels

SHARD = "part-{:05d}.jsonl"
RECORD = "run.json"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


class Annotator:
    """The Ray actor: builds the pipeline once, annotates batches of rows."""

    def __init__(self, labels: Optional[Labels], config: Optional[str], batch_size: int, threads: int):
        import torch

        from .pipeline.build import build_nlp

        if threads:
            torch.set_num_threads(threads)
        self.nlp = build_nlp(labels, Path(config) if config else None)
        self.batch_size = batch_size

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, List]:
        from .io import jsonl_line

        # (text, meta) travel as ASCII JSON: Arrow cannot hold a text with a lone surrogate
        items = [(int(i), *json.loads(item)) for i, item in zip(batch["index"], batch["item"])]
        outcomes = annotate_batch(self.nlp, items, self.batch_size)
        return {"index": [o.index for o in outcomes], "row": [jsonl_line(o.row).decode("utf8") for o in outcomes]}


def shard_logs(output: Path, documents: int, shard_size: int, echo: Echo) -> List[RunLog]:
    """Every shard of a run over `documents`, read and repaired (a torn last line is cut off)."""
    return [RunLog(output / SHARD.format(k), range(start, min(documents, start + shard_size)), echo)
            for k, start in enumerate(range(0, documents, shard_size))]


def _has_shards(folder: Path) -> bool:
    return folder.is_dir() and any(p.stat().st_size for p in folder.glob("part-*.jsonl"))


def annotate_ray(
    items: Sequence[Tuple[Any, dict]],
    output: Path,
    *,
    record: RunRecord,
    labels: Optional[object] = None,
    config: Optional[Path] = None,
    workers: int = 2,
    threads: int = 1,
    gpus_per_worker: float = 0.0,
    batch_size: int = 32,
    shard_size: int = 1000,
    address: Optional[str] = None,
    resume: bool = True,
    max_failed_batches: int = 3,
    echo: Echo = _stderr,
) -> Summary:
    """Annotate `items` (text, meta) on a Ray cluster into the shards of `output`, holding the output's
    lock; the summary says what is complete. Raises `runs.RunMismatch` for a folder written by another
    run, `runs.RunLocked` while another run writes it. `resume=False` writes into `<output>.pending`,
    which replaces `output` once no document is left to retry (`runs.choose_target`)."""
    try:
        import ray
    except ImportError as err:  # pragma: no cover - an optional extra
        raise ModelNotFound("annotate --ray needs Ray: pip install 'uniner-spacy[ray]'") from err
    if shard_size < 1 or workers < 1:
        raise ConfigError("shard_size and workers must be ≥ 1")
    output.parent.mkdir(parents=True, exist_ok=True)
    with locked(output):
        target = choose_target(output, record, resume, echo, has_rows=_has_shards, record_at=lambda p: p / RECORD,
                               clear=shutil.rmtree)
        target.mkdir(parents=True, exist_ok=True)
        start_run(record, target / RECORD, _has_shards(target), target)
        summary = _run(ray, items, target, labels, config, workers, threads, gpus_per_worker, batch_size,
                       shard_size, address, max_failed_batches, echo)
        settle(summary, output, target)
        return summary


def _run(ray, items, output: Path, labels, config, workers: int, threads: int,
         gpus_per_worker: float, batch_size: int, shard_size: int, address: Optional[str], max_failed_batches: int,
         echo: Echo) -> Summary:
    logs = shard_logs(output, len(items), shard_size, echo)
    todo = [i for log in logs for i in log.todo()]
    if len(todo) < len(items):
        echo(f"Resuming {output}: {len(items) - len(todo)} of {len(items)} documents are complete "
             f"({sum(log.valid for log in logs)} of {len(logs)} shards); annotating the other {len(todo)}")
    stopped = ""
    if todo:
        # worker logs reach the driver: a backend's errors are seen where the run is watched
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=True)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        data = ray.data.from_items([{"index": i, "item": json.dumps(items[i])} for i in todo])
        results = data.map_batches(
            Annotator,
            fn_constructor_kwargs={"labels": labels, "config": str(config) if config else None,
                                   "batch_size": batch_size, "threads": threads},
            batch_size=batch_size,
            concurrency=workers,
            num_cpus=threads,
            num_gpus=gpus_per_worker,
        )
        stopped = _write(results, todo, logs, shard_size, batch_size, Breaker(max_failed_batches))
    return Summary.of(logs, len(items), stopped=stopped)


def _write(results, todo: List[int], logs: List[RunLog], shard_size: int, batch_size: int,
           breaker: Breaker) -> str:
    """Append the rows as they come, in input order, to their shards; each shard is compacted
    once it has all its rows (and every shard when the run ends, however it ends)."""
    from .runs import parse_row

    current: Optional[RunLog] = None
    window: List[Tuple[str, str]] = []
    try:
        for expected, row in zip(todo, results.iter_rows()):
            index = int(row["index"])
            if index != expected:  # preserve_order is what the shards rely on
                raise InternalError(f"Ray returned document {index} where {expected} was due")
            log = logs[index // shard_size]
            if current is not None and log is not current:
                current.close()
            current = log
            line = row["row"].encode("utf8")
            log.append(line)
            parsed = parse_row(line, log.indices)
            assert parsed is not None  # append checked it
            window.append(parsed[1:])
            if len(window) == batch_size:
                if breaker.update(window):
                    return breaker.message()
                window = []
    finally:
        for log in logs:
            log.close()
    return ""
