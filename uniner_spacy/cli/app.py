"""`uniner-spacy`: annotate, evaluate, score and serve from the shell."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

import typer

from ..errors import UninerError
from ..types import Labels

# spaCy, the model libraries and every module importing them are imported inside the commands:
# spaCy's thinc imports torch, which would cost `--help` seconds (tests/test_imports.py)
app = typer.Typer(add_completion=False, help="UniversalNER-style open NER for spaCy.")


def uniner_pipe(nlp):
    """`pipeline.build.uniner_pipe`, imported when a command runs."""
    from ..pipeline.build import uniner_pipe as find

    return find(nlp)


def fail(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def json_settings(text: Optional[str], flag: str) -> Optional[dict]:
    """A JSON object given on the command line, or a clear exit."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"{flag} is not JSON ({err.msg} at character {err.pos}): {text!r}")
    if not isinstance(value, dict):
        fail(f"{flag} must be a JSON object of settings, e.g. '{{\"model\": \"embedded-gemma\"}}'")
    return value


def _read(path: Path, text_field: str) -> List[Tuple[str, dict]]:
    from ..corpus import read_corpus

    try:
        return read_corpus(path, text_field)
    except UninerError as err:
        fail(str(err))
        raise


def parse_labels(text: str) -> Labels:
    """`person,organization` or `person=A human being;city=A town` from the CLI."""
    if "=" in text:
        out = {}
        for item in text.split(";"):
            if item.strip():
                label, _, desc = item.partition("=")
                out[label.strip()] = desc.strip() or None
        return out
    return [l.strip() for l in text.split(",") if l.strip()]


def _echo(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def annotate(
    input: Path = typer.Argument(..., help="Text lines (.txt), JSONL with a text field, or a folder of .txt files"),
    output: Path = typer.Argument(..., help="Output: .jsonl (resumable), .spacy (DocBin) or .html (displaCy)"),
    labels: Optional[str] = typer.Option(None, help="person,organization or 'person=A human;city=A town'"),
    config: Optional[Path] = typer.Option(None, help="spaCy config or saved pipeline with a uniner pipe"),
    batch_size: int = typer.Option(32, help="Docs per batch at least; more when the backend takes more at once"),
    text_field: str = typer.Option("text", help="Field holding the text in JSONL input"),
    resume: bool = typer.Option(True, help="Keep a .jsonl output's complete rows and annotate only the rest "
                                           "(--no-resume starts over beside it and replaces it once done)"),
    max_failed_batches: int = typer.Option(3, help="Stop after N consecutive batches in which every document "
                                                   "failed (the backend looks down); 0: never stop"),
    ray: bool = typer.Option(False, "--ray", help="Run on Ray: OUTPUT is a folder of ordered JSONL shards"),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster address (default: local or RAY_ADDRESS)"),
    workers: int = typer.Option(2, help="With --ray: pipeline actors (one per GPU or CPU slot)"),
    threads: int = typer.Option(1, help="With --ray: CPU threads per actor"),
    gpus_per_worker: float = typer.Option(0.0, help="With --ray: GPUs per actor (1 for one per GPU)"),
    shard_size: int = typer.Option(1000, help="With --ray: documents per output shard"),
):
    """Annotate a corpus. Exit 0 when every document is complete; 1 when some are not, and a rerun of
    the same command retries exactly those; 3 when the rest can never be annotated as they are (fix
    the input); 2 when nothing could run (docs/batch-runs.md)."""
    from ..corpus import RayOptions, annotate_corpus
    from ..runs import RunMismatch, pending_path

    try:
        summary = annotate_corpus(
            input, output, labels=parse_labels(labels) if labels is not None else None, config=config,
            text_field=text_field, batch_size=batch_size, resume=resume, max_failed_batches=max_failed_batches,
            ray=RayOptions(workers, threads, gpus_per_worker, shard_size, ray_address) if ray else None, echo=_echo)
    except RunMismatch as err:  # a resume refused: another input, labels or config
        fail(f"{err}. Rerun with --no-resume to annotate anew: {output} is kept as it is until the new run "
             f"leaves nothing to retry (its rows go to {pending_path(output)} meanwhile)")
        raise
    except UninerError as err:  # nothing could run: the input, the output path, the labels or config
        fail(str(err))
        raise
    for line in summary.lines():
        _echo(line)
    raise typer.Exit(0 if summary.ok else 1 if summary.retryable else 3)


@app.command()
def distill(
    corpus: Path = typer.Argument(..., help="Raw text: lines (.txt), JSONL with a text field, or a .txt folder"),
    output_dir: Path = typer.Argument(..., help="Where the silver, the training run and the pipeline go"),
    labels: Optional[str] = typer.Option(None, help="person,organization or 'person=A human;city=A town'"),
    config: Optional[Path] = typer.Option(None, help="The teacher: a spaCy config or saved pipeline with a uniner "
                                                     "pipe (default: the embedded student)"),
    student: str = typer.Option("cnn", help="cnn (spaCy's efficiency ner) or transformer (spacy-transformers)"),
    encoder: Optional[Path] = typer.Option(None, help="With --student transformer: a local Hugging Face encoder "
                                                      "folder (default: the packaged all-MiniLM-L6-v2)"),
    max_steps: int = typer.Option(2000, help="spacy train steps"),
    min_score: str = typer.Option("0", help="Silver entities scoring below this are marked missing: one value, "
                                            "or per label, e.g. person=0.3,miscellaneous=0.6"),
    consistency: float = typer.Option(0.0, help="A name labelled several ways takes its majority label when it "
                                                "holds this share (0: off)"),
    keep_truncated: bool = typer.Option(False, help="Keep documents with an answer cut at the token limit"),
    unsure_candidates: bool = typer.Option(False, help="Mark the teacher's candidates that lost (to another label "
                                                       "or a threshold) missing instead of outside"),
    dev_share: float = typer.Option(0.1, help="Share of the silver held out for spacy train's model selection"),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(256, help="Docs per teacher batch"),
    text_field: str = typer.Option("text", help="Field holding the text in JSONL input"),
    max_failed_batches: int = typer.Option(3, help="Stop the teacher after N consecutive failed batches"),
    gold: Optional[Path] = typer.Option(None, help="Gold data to score the pipeline on (never its training text)"),
    gold_labels: Optional[str] = typer.Option(None, help="Label pairs where the gold names differ, e.g. "
                                                         "miscellaneous=else"),
    calibrate: Optional[Path] = typer.Option(None, help="A few gold-labelled documents (never the --gold ones): "
                                                        "the teacher annotates them and each label's --min-score "
                                                        "is set where its entities match that gold best"),
    calibrate_limit: int = typer.Option(300, help="First N documents of --calibrate"),
    reviewed: Optional[Path] = typer.Option(None, help="A corrected review export or gold .spacy (uniner-spacy "
                                                       "import): trained on beside the silver, in place of the "
                                                       "silver of the same texts"),
):
    """Teach a fast spaCy `ner` pipeline with the LLM: annotate → clean the silver → spacy train →
    package (`distill.distill_pipeline`). The last line of standard output is the pipeline's folder;
    exit 1 while the teacher's silver is not complete (rerun to finish it) (docs/distillation.md)."""
    from ..distill import SilverFilters, distill_pipeline

    filters = SilverFilters(drop_truncated=not keep_truncated, min_score=parse_thresholds(min_score),
                            consistency=consistency, unsure_candidates=unsure_candidates)
    pairs = dict(item.split("=", 1) for item in (gold_labels or "").split(",") if "=" in item)
    try:
        result = distill_pipeline(
            corpus, output_dir, labels=parse_labels(labels) if labels else None, config=config, filters=filters,
            student=student, encoder=encoder, max_steps=max_steps, dev_share=dev_share, seed=seed,
            batch_size=batch_size, text_field=text_field, max_failed_batches=max_failed_batches, gold=gold,
            gold_labels=pairs, calibrate=calibrate, calibrate_limit=calibrate_limit, reviewed=reviewed, echo=_echo)
    except UninerError as err:
        fail(str(err))
        raise
    if result.pipeline is None:
        raise typer.Exit(1)
    typer.echo(str(result.pipeline))


def parse_thresholds(text: str):
    """`0.4` or `person=0.3,miscellaneous=0.6` (labels not named: 0) from the CLI."""
    try:
        if "=" not in text:
            return float(text)
        return {label.strip(): float(value) for label, _, value in
                (item.partition("=") for item in text.split(",") if item.strip())}
    except ValueError:
        fail(f"--min-score takes a number or label=number pairs, not {text!r}")
        raise


@app.command()
def evaluate(
    data: List[Path] = typer.Argument(..., help="Data files (any supported format)"),
    limit: Optional[int] = typer.Option(None, help="First N texts of each file"),
    protocol: str = typer.Option("both", help="string | span | both"),
    config: Optional[Path] = typer.Option(None, help="spaCy config or saved pipeline; default: embedded model"),
    batch_size: int = typer.Option(32),
    predictions: Optional[Path] = typer.Option(None, help="Write predictions JSONL here"),
    format: Optional[str] = typer.Option(None, help="Override the detected data format"),
):
    """Score a pipeline on data files; the last line is one JSON object."""
    from ..evaluation.runner import evaluate_files

    result = evaluate_files(data, config=config, limit=limit, protocol=protocol, batch_size=batch_size,
                            predictions=predictions, format=format, echo=lambda s: typer.echo(s, err=False))
    typer.echo(json.dumps(result))


@app.command()
def score(
    gold: Path = typer.Option(..., help="Gold data file (any supported format)"),
    pred: Path = typer.Option(..., help="Predictions JSONL: {text, type, prediction[, spans]}"),
):
    """Score a predictions file without running a model; the last line is JSON."""
    from ..evaluation.protocols import score_files

    typer.echo(json.dumps(score_files(gold, pred)))


@app.command()
def calibrate(
    data: List[Path] = typer.Argument(..., help="Dev data files with gold spans (never a test split)"),
    output: Path = typer.Option(..., help="Where to write calibration.json"),
    limit: Optional[int] = typer.Option(None, help="First N texts of each file"),
    holdout: int = typer.Option(0, help="Also score the N texts after --limit of each file, not fitted on"),
    min_per_label: int = typer.Option(200, help="A label with this many candidates gets a mapping of its own"),
    config: Optional[Path] = typer.Option(None, help="spaCy config or saved pipeline; default: embedded model"),
    backend: Optional[str] = typer.Option(None, help="JSON settings over the default backend, "
                                          'e.g. \'{"model": "embedded-gemma"}\''),
    batch_size: int = typer.Option(32),
):
    """Fit score calibration on dev data, so that `threshold` is a probability of being right.

    The JSON records, beside the breakpoints, a reliability table (score bins
    against the share of candidates that are right) and its expected
    calibration error, on the fitted texts and, with `--holdout`, on texts the
    fit never saw.
    """
    from ..evaluation.calibrate import fit_calibration

    try:
        summary = fit_calibration(data, output, limit=limit, holdout=holdout, min_per_label=min_per_label,
                                  config=config, backend=json_settings(backend, "--backend"), batch_size=batch_size)
    except UninerError as err:
        fail(str(err))
        raise
    typer.echo(json.dumps(summary))


@app.command()
def serve(
    model: str = typer.Option("embedded", help="HF model name/path, a .gguf file, or 'embedded'"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    batch_size: int = typer.Option(16),
    api_key_env: Optional[str] = typer.Option(
        None, help="Environment variable with the bearer token clients must send (default: $UNINER_API_KEY "
        "if set, else no authentication)"),
    workers: int = typer.Option(16, help="Threads handling requests (generation runs one at a time)"),
    queue: int = typer.Option(64, help="Connections waiting for a worker; beyond them: 503 with Retry-After"),
):
    """Serve a UniNER model over an OpenAI-compatible HTTP API."""
    from ..serve import api_key_from_env
    from ..serve import serve as start

    try:
        api_key = api_key_from_env(api_key_env)
    except UninerError as err:
        fail(str(err))
        raise
    try:  # warns if open beyond localhost
        server = start(model, host, port, api_key=api_key, batch_size=batch_size, workers=workers, queue=queue)
    except UninerError as err:
        fail(str(err))
        raise
    typer.echo(f"Serving {model} at {server.url}" + (" (bearer token required)" if api_key else ""), err=True)
    try:
        import time

        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


@app.command()
def demo(
    labels: str = typer.Option("person,organization,location", help="Labels to ask for"),
):
    """Run the embedded default model on a few sentences."""
    import spacy

    texts = [
        "Barack Obama met Angela Merkel in Berlin to discuss NATO.",
        "Apple opened a new office in London, said Tim Cook.",
        "Marie Curie was born in Warsaw and worked at the University of Paris.",
        "The Mississippi River flows through Minneapolis and New Orleans.",
        "Elon Musk founded SpaceX in California in 2002.",
    ]

    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": parse_labels(labels)})
    for doc in nlp.pipe(texts, batch_size=len(texts)):
        typer.echo(doc.text)
        for e in doc.ents:
            typer.echo(f"    {e.text!r:<28} {e.label_:<14} {e._.uniner_score:.2f}")
        stats = doc._.uniner_stats
        typer.echo(f"    ({stats['queries']} queries, {stats['parse_failures']} parse failures, "
                   f"{len(stats['unaligned'])} unaligned, {stats['seconds']:.1f}s)")


@app.command()
def export(
    input: Path = typer.Argument(..., help="annotate output (.jsonl), a distillation run's silver.jsonl, or .spacy"),
    output: Path = typer.Argument(..., help="Label Studio: a .json task list (its labelling config is written "
                                            "beside it); Prodigy and doccano: .jsonl"),
    format: str = typer.Option(..., "--format", help="label-studio | prodigy | doccano"),
    uncertain_first: bool = typer.Option(False, "--uncertain-first", help="Documents whose least certain entity "
                                                                          "scores lowest first"),
    labels: Optional[str] = typer.Option(None, help="The labels to review (default: the run record beside INPUT, "
                                                    "else the labels found)"),
    lang: str = typer.Option("en", help="Tokenizer language of Prodigy's tokens"),
):
    """Export predictions for review in Label Studio, Prodigy or doccano, with each entity's score
    (docs/review.md); `uniner-spacy import` reads the corrected export back."""
    from ..review import read_predictions, write_export

    try:
        docs = read_predictions(input, list(parse_labels(labels)) if labels else None)
        written = write_export(docs, output, format, uncertain_first, lang)
    except UninerError as err:
        fail(str(err))
        raise
    _echo(f"Wrote {len(docs)} documents for {format} to " + " and ".join(str(p) for p in written))


@app.command("import")
def import_review(
    input: Path = typer.Argument(..., help="A corrected export: Label Studio JSON, Prodigy db-out or doccano JSONL"),
    gold: Optional[Path] = typer.Option(None, help="Write the reviewed documents as gold (.spacy) for score and "
                                                   "distill"),
    corrections: Optional[Path] = typer.Option(None, help="Write feedback corrections (.jsonl): kept, removed and "
                                                          "added spans"),
    block_list: Optional[Path] = typer.Option(None, help="Write a rules snippet (.yml) blocking texts rejected "
                                                         "--min-count times for a label"),
    format: Optional[str] = typer.Option(None, help="label-studio | prodigy | doccano (default: detected)"),
    labels: Optional[str] = typer.Option(None, help="Labels allowed (default: those the export was made for)"),
    min_count: int = typer.Option(2, help="Rejections of a text for a label before it is blocked"),
    lang: str = typer.Option("en", help="Tokenizer language of the gold docs"),
):
    """Read a corrected review export back: as gold, feedback corrections and block-list rules.
    An unknown label, overlapping spans or an edited text stop it with the document named."""
    from ..review import import_review as run

    if gold is None and corrections is None and block_list is None:
        fail("Say what to write: --gold, --corrections and/or --block-list")
    try:
        report = run(input, gold=gold, corrections=corrections, block_list=block_list, format=format,
                     labels=list(parse_labels(labels)) if labels else None, min_count=min_count, lang=lang)
    except UninerError as err:
        fail(str(err))
        raise
    for line in report.lines():
        _echo(line)
    _echo("Wrote " + ", ".join(str(p) for p in (gold, corrections, block_list) if p is not None))


@app.command()
def playground(
    config: Optional[Path] = typer.Option(None, help="spaCy config or saved pipeline with a uniner pipe "
                                                     "(default: the embedded student, offline)"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8001),
    max_chars: int = typer.Option(5000, help="Longest text one request takes"),
):
    """A page to try the model in a browser: type a text, name labels, see the entities (docs/review.md)."""
    import time

    from ..playground import Playground, serve_playground

    try:
        page = Playground.build(config, max_chars=max_chars)
    except UninerError as err:
        fail(str(err))
        raise
    server = serve_playground(page, host, port)  # warns if open beyond localhost
    typer.echo(f"Playground at {server.url} (Ctrl-C stops it)", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
