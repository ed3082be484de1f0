"""Batch runs that never lose a document: the output row, the run record, the log and the summary.

`annotate` (one process) and `annotate --ray` (distributed.py) share this. A run writes one row
per document with two bookkeeping keys, Prodigy-style: `_index` (its input position) and
`_status`: "ok" (complete stats), "failed" (the backend or a stage failed: retried by a rerun),
"skipped" (processing it raised: the row carries `_error`) or "invalid" (no rerun can annotate it:
its text is not a string, or longer than the pipeline's `max_length`). The output is an append-only log
while running, so `kill -9` loses at most a torn last line, which the next run cuts off; a rerun
annotates exactly the documents with no "ok" row and the end of a run compacts the log to one row
per document in input order. A run record (`RunRecord`) beside the output pins the input, labels
and config, so a rerun never mixes two runs in one file, and a lock (`locked`) keeps a second run
off an output while one writes it. docs/batch-runs.md has the whole story.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .errors import InternalError, UninerError
from .io import ERROR, FAILED, INDEX, INVALID, OK, SKIPPED, STATUS, STATUSES, doc_to_json
from .pipeline.component import SETUP_ERRORS, UniNER
from .types import Stats

Echo = Callable[[str], None]
Item = Tuple[int, str, dict]  # (input position, text, meta)


class RunMismatch(UninerError):
    """An existing output that this run must not resume: another input, labels or config."""


class RunLocked(UninerError):
    """Another run is writing this output (it holds the output's lock)."""


class OutputError(UninerError):
    """An output path a run must not write: the input itself, a folder for a file, an unknown format."""


# ---------------------------------------------------------------- rows


def doc_row(doc, meta: dict, index: int) -> dict:
    """The output row of an annotated doc; "ok" only when its stats are complete."""
    row = doc_to_json(doc, meta)
    if doc._.uniner_stats is None:
        return {**row, INDEX: index, STATUS: FAILED, ERROR: "no uniner pipe annotated this document"}
    stats = Stats.from_dict(doc._.uniner_stats)
    if stats.complete:
        return {**row, INDEX: index, STATUS: OK}
    return {**row, INDEX: index, STATUS: FAILED, ERROR: "; ".join(dict.fromkeys(stats.errors))}


def skipped_row(text: Any, meta: dict, index: int, error: str, status: str = SKIPPED) -> dict:
    """The row of a document that could not be processed at all (the same fields as any row)."""
    return {"text": text, **meta, "ents": [], "spans": [], "stats": Stats(errors=[error]).to_dict(),
            INDEX: index, STATUS: status, ERROR: error}


def unusable(text: Any, max_length: int) -> str:
    """Why no run can ever annotate `text` as it is ("" when one can): the input must change."""
    if not isinstance(text, str):
        kind = "null" if text is None else type(text).__name__
        return f"its text is {kind}, not a string: fix it in the input"
    if len(text) > max_length:
        return (f"its text has {len(text)} characters, over the pipeline's max_length ({max_length}): split it "
                "in the input, or raise nlp.max_length")
    return ""


def n_documents(n: int) -> str:
    """`1 document`, `2 documents`."""
    return f"{n} document" + ("" if n == 1 else "s")


def describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:500]


@dataclass
class Outcome:
    index: int
    row: dict
    doc: Any = None  # the Doc, when the document could be processed

    @property
    def status(self) -> str:
        return self.row[STATUS]


def annotate_batch(nlp, batch: Sequence[Item], batch_size: int) -> List[Outcome]:
    """One outcome per item, in order; never raises for a document.

    The batch goes through `nlp.pipe` with its positions as contexts, so a doc an error handler
    drops cannot shift the others. If the batch raises or comes back short, its documents go one
    by one, and a document that raises on its own (a poison text) is "skipped". A setup error
    (`SETUP_ERRORS`) is raised on: it would fail every document. A text no run can annotate
    (`unusable`) is "invalid" and never reaches the pipeline.
    """
    invalid = {index: unusable(text, nlp.max_length) for index, text, _ in batch}
    if any(invalid.values()):
        usable = annotate_batch(nlp, [item for item in batch if not invalid[item[0]]], batch_size)
        done = {outcome.index: outcome for outcome in usable}
        return [done[index] if not invalid[index] else
                Outcome(index, skipped_row(text, meta, index, invalid[index], INVALID))
                for index, text, meta in batch]
    if not batch:
        return []
    wanted = [index for index, _, _ in batch]
    metas = {index: meta for index, _, meta in batch}
    try:
        got = list(nlp.pipe(((text, index) for index, text, _ in batch), as_tuples=True, batch_size=batch_size))
        if [index for _, index in got] == wanted:
            return [_outcome(doc, metas[index], index, text) for (doc, index), (_, text, _) in zip(got, batch)]
    except SETUP_ERRORS:
        raise
    except Exception as err:
        logging.getLogger(__name__).debug("batch %s..%s raised; going one by one", wanted[0], wanted[-1],
                                          exc_info=err)
    out = []
    for index, text, meta in batch:
        try:
            one = list(nlp.pipe([(text, index)], as_tuples=True))
        except SETUP_ERRORS:
            raise
        except Exception as err:
            out.append(Outcome(index, skipped_row(text, meta, index, describe(err))))
            continue
        if not one:
            out.append(Outcome(index, skipped_row(text, meta, index, "the pipeline's error handler dropped it")))
        else:
            out.append(_outcome(one[0][0], meta, index, text))
    return out


def _outcome(doc, meta: dict, index: int, text: str) -> Outcome:
    try:
        return Outcome(index, doc_row(doc, meta, index), doc)
    except Exception as err:  # a row that cannot be built is a poison document too
        return Outcome(index, skipped_row(text, meta, index, describe(err)))


def batches(indices: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(indices), max(1, size)):
        yield indices[start : start + max(1, size)]


# ---------------------------------------------------------------- the run record


def _sha256(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return "sha256:" + h.hexdigest()


@dataclass
class RunRecord:
    """What an output was written from; a resume must match it (the version is for the reader)."""

    version: str
    documents: int
    input: str  # sha256 over the (text, meta) items, in order
    labels: Dict[str, Optional[str]]  # the uniner pipes' labels and descriptions
    config: str  # sha256 of the pipeline config, labels aside (they are compared on their own)

    @classmethod
    def of(cls, items: Sequence[Tuple[str, dict]], nlp) -> "RunRecord":
        from . import __version__

        # ASCII escapes: a lone surrogate in a text is hashed like any other character
        fingerprint = _sha256(json.dumps([t, m], default=str).encode("ascii") + b"\n" for t, m in items)
        labels: Dict[str, Optional[str]] = {}
        cfg = nlp.config.copy()
        for name, pipe in nlp.pipeline:
            if isinstance(pipe, UniNER):
                labels.update(pipe.label_map)
                cfg["components"].get(name, {}).pop("labels", None)
        return cls(__version__, len(items), fingerprint, labels, _sha256([cfg.to_str().encode("utf8")]))

    def differences(self, other: "RunRecord") -> List[str]:
        """What `other` (this run) does not share with the run that wrote the output, in words."""
        out = []
        if (self.input, self.documents) != (other.input, other.documents):
            out.append(f"the input differs ({self.documents} documents, {self.input[:19]}…; now {other.documents}, "
                       f"{other.input[:19]}…)")
        if list(self.labels.items()) != list(other.labels.items()):
            out.append(f"the labels differ ({list(self.labels)}; now {list(other.labels)})")
        if self.config != other.config:
            out.append(f"the pipeline config differs ({self.config[:19]}…; now {other.config[:19]}…)")
        return out

    def write(self, path: Path) -> None:
        replace_atomically(path, (json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n").encode("utf8"))

    @classmethod
    def read(cls, path: Path) -> "RunRecord":
        try:
            data = json.loads(path.read_text(encoding="utf8"))
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as err:
            raise RunMismatch(f"cannot read the run record {path} ({describe(err)})") from None


def record_path(output: Path) -> Path:
    """`out.jsonl` → `out.jsonl.run.json` (a Ray output folder keeps `run.json` inside)."""
    return output.with_name(output.name + ".run.json")


def start_run(record: RunRecord, where: Path, has_rows: bool, output: Path) -> None:
    """Write the record for a fresh output; for an existing one, refuse unless it is this run's."""
    if not has_rows:
        record.write(where)
        return
    if not where.exists():
        raise RunMismatch(f"{output} exists but has no run record ({where.name}): it was not written by this "
                          "version of uniner-spacy, so it cannot be resumed")
    differs = RunRecord.read(where).differences(record)
    if differs:
        raise RunMismatch(f"{output} was written by another run: " + "; ".join(differs))


@contextmanager
def replaced_atomically(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path`'s new content into; it takes `path`'s place, synced, only when the
    block ends without an error, so a reader (or a kill) never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_atomically(path: Path, data: bytes) -> None:
    with replaced_atomically(path) as fh:
        fh.write(data)


# ---------------------------------------------------------------- one run per output


def lock_path(output: Path) -> Path:
    return output.with_name(output.name + ".lock")


@contextmanager
def locked(output: Path) -> Iterator[None]:
    """Hold `output` (a file or a Ray folder), its run record and the files beside it for one run:
    an advisory `flock` on `<output>.lock`, refused at once (`RunLocked`) while another run holds it.

    The lock file goes when the run ends; a run that finds the file it locked removed (by a run that
    just ended) locks the new one instead, so two runs never hold two files of one name. A kill
    releases the lock with the process. Where `fcntl` is missing (Windows) there is no lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fh = path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            raise RunLocked(f"{output} is being written by another run ({path.name} is held"
                            + (f" by process {holder}" if holder else "") + "); wait for that run to end, "
                            "or write to another output") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()
    try:
        fh.truncate(0)
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # before the lock goes: a run waiting on this file sees it removed
        fh.close()


# ---------------------------------------------------------------- --no-resume: a replacement beside the output


def pending_path(output: Path) -> Path:
    """Where a `--no-resume` run writes while `output` stays as it was: `out.jsonl` → `out.pending.jsonl`
    (a Ray folder `out` → `out.pending`)."""
    return output.with_name(output.stem + ".pending" + output.suffix)


def choose_target(output: Path, record: "RunRecord", resume: bool, echo: Echo, *, has_rows: Callable[[Path], bool],
                  record_at: Callable[[Path], Path], clear: Callable[[Path], None]) -> Path:
    """Where this run writes: `output`, unless `--no-resume` (`resume=False`) meets an output with rows.
    Then the run goes to `pending_path(output)` and `output` stays as it is until `settle` swaps the
    new rows in; a pending replacement of this same run is resumed, one of other settings started over."""
    if resume or not has_rows(output):
        return output
    pending = pending_path(output)
    if has_rows(pending):
        try:
            start_run(record, record_at(pending), True, pending)
            echo(f"Resuming {pending}, the replacement of {output} that an earlier --no-resume run began")
            return pending
        except RunMismatch:
            echo(f"Starting {pending} over: an earlier --no-resume run with other input or settings left it")
            clear(pending)
    echo(f"--no-resume: annotating into {pending}; it replaces {output} once no document is left to retry, "
         f"and until then {output} stays as it is")
    return pending


def settle(summary: "Summary", output: Path, target: Path,
           records: Tuple[Optional[Path], Optional[Path]] = (None, None)) -> None:
    """The end of a resumable run: a pending replacement (`choose_target`) takes the output's place once
    nothing is left to retry, and the summary's closing notes say what is left and what to do."""
    if target != output:
        if not summary.retryable:
            swap_in(target, output, *records)
            summary.notes.append(f"Replaced {output} with the rows of this run")
        else:
            summary.notes.append(f"{output} is kept as it was: this --no-resume run's rows are in {target}, and "
                                 f"they replace {output} once no document is left to retry")
    if summary.ok:
        summary.notes.append(f"Wrote {n_documents(summary.documents)} to {output}")
    if summary.retryable:
        summary.notes.append(f"{n_documents(summary.retryable)} not complete: rerun the same command to retry "
                             f"exactly those (the complete ones in {target} are kept)")
    summary.note_invalid()


def swap_in(new: Path, output: Path, new_record: Optional[Path] = None, record: Optional[Path] = None) -> None:
    """`new` takes `output`'s place (and `new_record` `record`'s). The output goes first: a stop in
    between leaves the new rows under the old record, which a resume refuses, never the reverse."""
    if new.is_dir():
        aside = output.with_name(output.name + ".replaced")
        if aside.exists():
            shutil.rmtree(aside)
        if output.exists():
            os.replace(output, aside)
        os.replace(new, output)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(new, output)
    if new_record is not None and record is not None:
        os.replace(new_record, record)


# ---------------------------------------------------------------- the log


def parse_row(line: bytes, indices: range) -> Optional[Tuple[int, str, str]]:
    """(index, status, error) of a row of this run's `indices`; None for anything else."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict):
        return None
    index, status = row.get(INDEX), row.get(STATUS)
    if not isinstance(index, int) or index not in indices or status not in STATUSES:
        return None
    return index, status, str(row.get(ERROR) or "")


class RunLog:
    """One JSONL output (or Ray shard) covering `indices`: read, repaired, appended to, compacted.

    Only where each index's latest row sits is kept in memory (and the error of rows not "ok").
    """

    def __init__(self, path: Path, indices: range, echo: Echo):
        self.path, self.indices, self.echo = path, indices, echo
        self.where: Dict[int, Tuple[int, int]] = {}  # index -> (offset, length) of its latest row
        self.problems: Dict[int, Tuple[str, str]] = {}  # index -> (status, error) of a latest row not "ok"
        self.compact = True  # rows in strictly increasing index order, nothing else in the file
        self.size = 0
        self._last = -1
        self._out: Optional[Any] = None
        if path.exists():
            self._read()

    def _read(self) -> None:
        bad: List[Tuple[int, int, int]] = []  # (line number, offset, length)
        offset = 0
        with self.path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                parsed = parse_row(line, self.indices) if line.endswith(b"\n") else None
                if parsed is not None:
                    self._note(parsed, offset, len(line))
                elif line.endswith(b"\n") and not line.strip():
                    self.compact = False  # a blank line: compaction drops it
                else:
                    bad.append((number, offset, len(line)))
                offset += len(line)
        self.size = offset
        if bad and bad[-1][1] + bad[-1][2] == offset:  # the last line: torn by a stopped run
            number, start, length = bad.pop()
            os.truncate(self.path, start)
            self.size = start
            self.echo(f"Repaired {self.path}: cut off its torn last line ({length} bytes at line {number}), "
                      "left by a run that was stopped")
        for number, _, _ in bad:
            self.echo(f"Warning: {self.path}:{number} is not a row of this run; ignored (it goes when the file "
                      "is compacted)")
            self.compact = False

    def _note(self, parsed: Tuple[int, str, str], offset: int, length: int) -> None:
        index, status, error = parsed
        if index <= self._last:
            self.compact = False
        self._last = max(self._last, index)
        self.where[index] = (offset, length)
        if status == OK:
            self.problems.pop(index, None)
        else:
            self.problems[index] = (status, error)

    def todo(self) -> List[int]:
        """The documents a run still has to annotate: no row, or a latest row that is neither "ok" nor
        "invalid" (the input is pinned by the run record, so an invalid text stays invalid)."""
        return [i for i in self.indices if i not in self.where or self.problems.get(i, (INVALID,))[0] != INVALID]

    @property
    def valid(self) -> bool:
        """Every line a row, one per index in order, each "ok" or "invalid": nothing left to do."""
        return self.compact and len(self.where) == len(self.indices) and not self.todo()

    def append(self, line: bytes) -> None:
        parsed = parse_row(line, self.indices)
        if parsed is None or not line.endswith(b"\n"):
            raise InternalError(f"not a row of {self.path}'s documents: {line[:200]!r}")
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.path.open("ab")
        self._out.write(line)
        self._out.flush()
        self._note(parsed, self.size, len(line))
        self.size += len(line)

    def close(self) -> None:
        """End of a run (any end): one row per document in input order, swapped in atomically."""
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.compact or not self.path.exists():
            return
        where: Dict[int, Tuple[int, int]] = {}
        with self.path.open("rb") as src, replaced_atomically(self.path) as dst:
            for index in sorted(self.where):
                offset, length = self.where[index]
                src.seek(offset)
                where[index] = (dst.tell(), length)
                dst.write(src.read(length))
        self.where, self.compact, self.size = where, True, self.path.stat().st_size
        self._last = max(where, default=-1)


# ---------------------------------------------------------------- stopping and summing up


class Breaker:
    """Stops a run after `limit` consecutive batches with no document "ok" (0: never)."""

    def __init__(self, limit: int):
        self.limit, self.run = limit, 0
        self.errors: Counter = Counter()

    def update(self, outcomes: Sequence[Tuple[str, str]]) -> bool:
        """(status, error) of one batch; True: stop now. Invalid rows say nothing of the backend."""
        outcomes = [(status, error) for status, error in outcomes if status != INVALID]
        if not outcomes:
            return False
        if any(status == OK for status, _ in outcomes):
            self.run, self.errors = 0, Counter()
            return False
        self.run += 1
        self.errors.update(error for _, error in outcomes)
        return self.limit > 0 and self.run >= self.limit

    def message(self) -> str:
        cause = self.errors.most_common(1)[0][0] if self.errors else ""
        return (f"stopped after {self.run} consecutive batches in which every document failed: the backend "
                f"looks down" + (f" ({cause})" if cause else ""))


class LoggedWarnings(logging.Handler):
    """Counts the package's warnings during a run and shows each distinct one once instead of once
    per batch (the pipe warns per failing batch)."""

    def __init__(self, echo: Echo, logger: str = "uniner_spacy"):
        super().__init__(logging.WARNING)
        self.echo, self.logger = echo, logging.getLogger(logger)
        self.counts: Counter = Counter()
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()[:500]
        if message not in self.counts:
            self.echo(f"Warning: {message}")
        self.counts[message] += 1
        self.last = message

    def __enter__(self) -> "LoggedWarnings":
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)


@dataclass
class Summary:
    documents: int
    counts: Counter = field(default_factory=Counter)  # status -> documents
    errors: Counter = field(default_factory=Counter)  # the error of each document not "ok"
    warnings: Counter = field(default_factory=Counter)
    stopped: str = ""
    notes: List[str] = field(default_factory=list)  # what the run did with its output, what is left to do

    @classmethod
    def of(cls, logs: Sequence[RunLog], documents: int, **kwargs) -> "Summary":
        out = cls(documents, **kwargs)
        for log in logs:
            for index in log.where:
                status, error = log.problems.get(index, (OK, ""))
                out.add(status, error)
        return out

    def add(self, status: str, error: str = "") -> None:
        self.counts[status] += 1
        if status != OK:
            self.errors[error or "(no message)"] += 1

    @property
    def ok(self) -> bool:
        return self.counts[OK] == self.documents

    @property
    def missing(self) -> int:
        return self.documents - sum(self.counts.values())

    @property
    def retryable(self) -> int:
        """Documents a rerun of the same command may still complete (all but "ok" and "invalid")."""
        return self.documents - self.counts[OK] - self.counts[INVALID]

    def note_invalid(self) -> None:
        if self.counts[INVALID]:
            self.notes.append(f"{n_documents(self.counts[INVALID])} can never be annotated as they are (their "
                              "_error says why: a text that is not a string, or too long): fix them in the input")

    def lines(self, most: int = 3) -> List[str]:
        invalid, missing = self.counts[INVALID], self.missing
        out = [f"{n_documents(self.documents)}: {self.counts[OK]} complete, {self.counts[FAILED]} failed, "
               f"{self.counts[SKIPPED]} skipped" + (f", {invalid} invalid" if invalid else "")
               + (f", {missing} not reached" if missing else "")]
        if self.stopped:
            out.append(self.stopped[0].upper() + self.stopped[1:])
        for name, counts in (("errors", self.errors), ("warnings logged", self.warnings)):
            if counts:
                out.append(f"{name}:")
                out += [f"  {n} × {message}" for message, n in counts.most_common(most)]
                if len(counts) > most:
                    out.append(f"  ... and {len(counts) - most} other kinds")
        return out + self.notes
