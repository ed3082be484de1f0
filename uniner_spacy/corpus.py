"""Annotate a corpus into a file or a folder, resumably: the Python API behind `uniner-spacy annotate`.

`annotate_corpus` reads the input, checks the paths, builds the pipeline and runs it into a `.jsonl`
(resumable), `.spacy` or `.html` file, or with `ray=RayOptions(...)` into a folder of shards
(distributed.py). `annotate_items` is the one-process run over items already read, with a pipeline
already built (distillation's silver uses it). Both return the run's `runs.Summary`, whose `lines()`
end with what the output holds and what is left to do. The bookkeeping is runs.py's;
docs/batch-runs.md tells the whole story.

    summary = annotate_corpus("in.jsonl", "out.jsonl", labels=["person", "organization"])
    if not summary.ok: ...  # summary.retryable: a rerun may finish them; counts["invalid"]: fix the input
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from .errors import InputError
from .io import ERROR, INVALID, OK, jsonl_line, read_texts
from .runs import (
    SETUP_ERRORS,
    Breaker,
    Echo,
    LoggedWarnings,
    OutputError,
    RunLog,
    RunRecord,
    Summary,
    annotate_batch,
    batches,
    choose_target,
    describe,
    lock_path,
    locked,
    n_documents,
    pending_path,
    record_path,
    replace_atomically,
    settle,
    start_run,
)
from .types import Labels

FORMATS = (".jsonl", ".spacy", ".html")
Items = Sequence[Tuple[Any, dict]]  # (text, meta); a text that is no string becomes an "invalid" row


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class RayOptions:
    """How `annotate_corpus` runs on Ray: pipeline actors, their CPU threads and GPUs, documents per
    output shard, and the cluster (None: local, or `RAY_ADDRESS`)."""

    workers: int = 2
    threads: int = 1
    gpus_per_worker: float = 0.0
    shard_size: int = 1000
    address: Optional[str] = None


def annotate_corpus(
    input: Union[str, Path],
    output: Union[str, Path],
    *,
    labels: Optional[Labels] = None,
    config: Optional[Union[str, Path]] = None,
    text_field: str = "text",
    batch_size: int = 32,
    resume: bool = True,
    max_failed_batches: int = 3,
    ray: Optional[RayOptions] = None,
    echo: Echo = _stderr,
    progress: bool = True,
) -> Summary:
    """Annotate the texts of `input` (text lines, JSONL with a `text_field`, or a folder of .txt files)
    with the pipeline of `config` (a config file or saved pipeline) and/or `labels` into `output`.

    `.jsonl` (and a Ray folder) resume: a rerun annotates only the documents without an "ok" row.
    `resume=False` writes a fresh run beside the output (`out.pending.jsonl`) that replaces it only
    once no document is left to retry. A `.spacy` or `.html` output is replaced only by a run that
    leaves nothing to retry (or written where none exists yet). Raises `UninerError` subclasses for
    what cannot run at all: `InputError` (no such input, not UTF-8, no documents), `OutputError`
    (the output is the input or a folder), `RunMismatch` (an output of another run), `RunLocked`
    (another run writes it), `ConfigError` (labels, config).
    """
    from .pipeline.build import build_nlp

    input, output = Path(input), Path(output)
    check_paths(input, output, ray=ray is not None)
    items = read_corpus(input, text_field)
    nlp = build_nlp(labels, config)
    if ray is None:
        return annotate_items(nlp, items, output, resume=resume, batch_size=batch_size,
                              max_failed_batches=max_failed_batches, echo=echo, progress=progress)
    from .distributed import annotate_ray

    return annotate_ray(items, output, record=RunRecord.of(items, nlp), labels=labels,
                        config=Path(config) if config is not None else None,
                        workers=ray.workers, threads=ray.threads, gpus_per_worker=ray.gpus_per_worker,
                        batch_size=batch_size, shard_size=ray.shard_size, address=ray.address, resume=resume,
                        max_failed_batches=max_failed_batches, echo=echo)


def read_corpus(path: Path, text_field: str = "text") -> List[Tuple[Any, dict]]:
    """Every (text, meta) of `path`; an input that is missing, not UTF-8 or empty is an `InputError`."""
    if not path.exists():
        raise InputError(f"Input {path} does not exist")
    try:
        items = list(read_texts(path, text_field))
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text ({err})") from None
    if not items:
        raise InputError(f"Input {path} holds no documents" + (" (.txt files)" if path.is_dir() else "")
                         + ": nothing to annotate")
    return items


def run_files(output: Path, ray: bool = False) -> List[Path]:
    """Every path a run on `output` may write, replace or remove."""
    if ray:
        return [output, pending_path(output), lock_path(output), output.with_name(output.name + ".replaced")]
    pending = pending_path(output)
    return [output, record_path(output), failed_path(output), pending, record_path(pending), lock_path(output),
            *(path.with_name(path.name + ".tmp") for path in (output, record_path(output), failed_path(output)))]


def check_paths(input: Path, output: Path, ray: bool = False) -> None:
    """Refuse an output a run must not write (`OutputError`): one of its files is the input, a
    folder where a file is due (or the reverse), an unknown format."""
    for path in run_files(output, ray):
        if _same(input, path):
            named = "" if path == output else f" (as {path.name}, which a run on {output.name} writes)"
            raise OutputError(f"Input and output are the same file: {input}{named}. A run writes its output, "
                              "which would destroy the input: choose another output path")
    if ray:
        if output.suffix:
            raise OutputError(f"With Ray the output is a folder of shards, not {output.name!r}")
        if output.exists() and not output.is_dir():
            raise OutputError(f"{output} is a file: with Ray the output is a folder of shards")
    elif output.suffix not in FORMATS:
        raise OutputError(f"Output must end in {', '.join(FORMATS)}, not {output.name!r}")
    elif output.is_dir():
        raise OutputError(f"{output} is a folder: the output is a {output.suffix} file (a folder of shards is "
                          "written with Ray only)")


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return a.resolve() == b.resolve()


def annotate_items(
    nlp,
    items: Items,
    output: Union[str, Path],
    *,
    resume: bool = True,
    batch_size: int = 32,
    max_failed_batches: int = 3,
    record: Optional[RunRecord] = None,
    echo: Echo = _stderr,
    progress: bool = True,
) -> Summary:
    """`annotate_corpus` in one process for `items` (text, meta) and a built `nlp`, holding the
    output's lock for the run; `record` pins the run (default: `RunRecord.of(items, nlp)`)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with locked(output):
        if output.suffix == ".jsonl":
            return _annotate_jsonl(nlp, items, output, record or RunRecord.of(items, nlp), resume, batch_size,
                                   max_failed_batches, echo, progress)
        return _annotate_docs(nlp, items, output, batch_size, max_failed_batches, echo, progress)


def _annotate_jsonl(nlp, items: Items, output: Path, record: RunRecord, resume: bool, batch_size: int,
                    max_failed_batches: int, echo: Echo, progress: bool) -> Summary:
    """An append-only log of rows while running, compacted to input order when the run ends."""

    def clear(path: Path) -> None:
        path.unlink(missing_ok=True)
        record_path(path).unlink(missing_ok=True)

    target = choose_target(output, record, resume, echo, has_rows=_has_rows, record_at=record_path, clear=clear)
    start_run(record, record_path(target), _has_rows(target), target)
    target.touch()
    log = RunLog(target, range(len(items)), echo)
    todo = log.todo()
    if log.where:
        invalid = sum(status == INVALID for status, _ in log.problems.values())
        echo(f"Resuming {target}: {len(items) - len(todo)} of {len(items)} documents are complete"
             + (f" ({invalid} of them invalid)" if invalid else "") + f"; annotating the other {len(todo)}")
    try:
        stopped, warnings = run_batches(nlp, items, todo, batch_size, max_failed_batches,
                                        lambda outcome: log.append(jsonl_line(outcome.row)), echo, progress)
    finally:
        log.close()
    summary = Summary.of([log], len(items), stopped=stopped, warnings=warnings)
    settle(summary, output, target, (record_path(target), record_path(output)))
    return summary


def _has_rows(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def failed_path(output: Path) -> Path:
    return output.with_name(output.name + ".failed.jsonl")


def _annotate_docs(nlp, items: Items, output: Path, batch_size: int, max_failed_batches: int, echo: Echo,
                   progress: bool) -> Summary:
    """.spacy and .html hold complete documents only; the others' rows go to `<output>.failed.jsonl`.
    Both are written at the end, each to a temporary file moved into place, and only by a run that
    leaves nothing to retry or where no output exists yet: a worse run never replaces a better one."""
    failed = failed_path(output)
    scratch = failed.with_name(failed.name + ".tmp")
    summary, docs = Summary(len(items)), []
    try:
        with scratch.open("wb") as rows:

            def keep(outcome) -> None:
                summary.add(outcome.status, outcome.row.get(ERROR, ""))
                if outcome.status == OK:
                    docs.append(outcome.doc)
                else:
                    rows.write(jsonl_line(outcome.row))

            summary.stopped, summary.warnings = run_batches(nlp, items, list(range(len(items))), batch_size,
                                                            max_failed_batches, keep, echo, progress)
        if summary.retryable and output.exists():
            summary.notes.append(
                f"{output} is kept as it was: this run left {n_documents(summary.retryable)} to retry, and a "
                f"{output.suffix} output is replaced only by a run that leaves none (a .jsonl output keeps the "
                "complete documents of every run and retries just the rest)")
            summary.note_invalid()
            return summary
        replace_atomically(output, _render(nlp, docs, output.suffix))
        if summary.ok:
            failed.unlink(missing_ok=True)  # an earlier run's failures: this run has none
            summary.notes.append(f"Wrote {n_documents(summary.documents)} to {output}")
        else:
            os.replace(scratch, failed)
            summary.notes.append(f"{n_documents(summary.documents - summary.counts[OK])} not complete, so not in "
                                 f"{output}: their rows are in {failed} (a .jsonl output can retry just those)")
            summary.note_invalid()
        return summary
    finally:
        scratch.unlink(missing_ok=True)


def _render(nlp, docs: list, suffix: str) -> bytes:
    if suffix == ".spacy":
        from spacy.tokens import DocBin

        return DocBin(docs=docs, store_user_data=True).to_bytes()
    from spacy import displacy

    from .palette import label_colors
    from .pipeline.build import uniner_pipe

    colors = label_colors(uniner_pipe(nlp).labels) if "uniner" in nlp.pipe_names else {}  # one per label
    return displacy.render(docs, style="ent", page=True, options={"colors": colors}).encode("utf8")


def run_batches(nlp, items: Items, todo: Sequence[int], batch_size: int, max_failed_batches: int,
                keep: Callable[[Any], None], echo: Echo = _stderr, progress: bool = True) -> Tuple[str, Any]:
    """Annotate the `todo` positions batch by batch, handing each outcome to `keep`;
    returns (why the run stopped early or "", the warnings logged)."""
    from tqdm import tqdm

    from .pipeline.build import uniner_pipe

    breaker = Breaker(max_failed_batches)
    if "uniner" in nlp.pipe_names:  # batches that fill the backend, whatever batch_size says
        batch_size = uniner_pipe(nlp).docs_per_batch(batch_size)
    bar = tqdm(total=len(todo), unit="doc", desc="annotate", disable=not progress)
    with LoggedWarnings(echo) as logged:
        try:
            for chunk in batches(todo, batch_size):
                outcomes = annotate_batch(nlp, [(i, *items[i]) for i in chunk], batch_size)
                for outcome in outcomes:
                    keep(outcome)
                bar.update(len(outcomes))
                if breaker.update([(o.status, o.row.get(ERROR, "")) for o in outcomes]):
                    return breaker.message(), logged.counts
        except SETUP_ERRORS as err:
            return f"stopped: the pipeline cannot run ({describe(err)}); fix that and rerun", logged.counts
        except KeyboardInterrupt:  # the rows written are whole; the summary says what is left
            return "stopped: interrupted", logged.counts
        finally:
            bar.close()
    return "", logged.counts
