"""`uniner-spacy annotate --ray`: one pipeline per Ray worker, output in input order.

Ray Data holds the input rows and feeds an actor pool; each actor builds the
pipeline once (one per GPU, or per `threads` CPU cores) and annotates whole
`nlp.pipe` batches. The driver writes the results in input order as shards
of `shard_size` documents (`part-00000.jsonl`, ...), so a stopped run resumes
after its last complete shard.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .io import jsonl_rows
from .types import Labels

SHARD = "part-{:05d}.jsonl"


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
        from .io import doc_to_json

        texts = [str(t) for t in batch["text"]]
        metas = [json.loads(m) for m in batch["meta"]]
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        rows = [json.dumps(doc_to_json(doc, meta), ensure_ascii=False) for doc, meta in zip(docs, metas)]
        return {"index": list(batch["index"]), "row": rows}


def complete_shards(output: Path, shard_size: int) -> int:
    """How many leading shards are already complete (a resumed run starts after them)."""
    n = 0
    while (output / SHARD.format(n)).exists():
        # a line cut short by a stopped run is not a document written
        if sum(1 for _ in jsonl_rows(output / SHARD.format(n), on_bad=lambda message: None)) < shard_size:
            break
        n += 1
    return n


def annotate_ray(
    items: Sequence[Tuple[str, dict]],
    output: Path,
    *,
    labels: Optional[object] = None,
    config: Optional[Path] = None,
    workers: int = 2,
    threads: int = 1,
    gpus_per_worker: float = 0.0,
    batch_size: int = 32,
    shard_size: int = 1000,
    address: Optional[str] = None,
) -> List[Path]:
    """Annotate `items` (text, meta) on a Ray cluster; returns the shard paths written."""
    try:
        import ray
    except ImportError as err:  # pragma: no cover - an optional extra
        raise RuntimeError("annotate --ray needs Ray: pip install 'uniner-spacy[ray]'") from err
    if shard_size < 1 or workers < 1:
        raise ValueError("shard_size and workers must be ≥ 1")
    output.mkdir(parents=True, exist_ok=True)
    start = complete_shards(output, shard_size) * shard_size
    todo = [(i, text, meta) for i, (text, meta) in enumerate(items) if i >= start]
    if not todo:
        return sorted(output.glob("part-*.jsonl"))
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    data = ray.data.from_items([{"index": i, "text": t, "meta": json.dumps(m)} for i, t, m in todo])
    results = data.map_batches(
        Annotator,
        fn_constructor_kwargs={"labels": labels, "config": str(config) if config else None,
                               "batch_size": batch_size, "threads": threads},
        batch_size=batch_size,
        concurrency=workers,
        num_cpus=threads,
        num_gpus=gpus_per_worker,
    )
    written: List[Path] = []
    shard, handle = -1, None
    try:
        expected = start
        for row in results.iter_rows():
            if int(row["index"]) != expected:  # preserve_order is what the shards rely on
                raise RuntimeError(f"Ray returned document {row['index']} where {expected} was due")
            expected += 1
            k = int(row["index"]) // shard_size
            if k != shard:
                if handle:
                    handle.close()
                shard = k
                written.append(output / SHARD.format(k))
                handle = written[-1].open("w", encoding="utf8")
            assert handle is not None  # the first row always opens a shard
            handle.write(row["row"] + "\n")
    finally:
        if handle:
            handle.close()
    return sorted(output.glob("part-*.jsonl"))
