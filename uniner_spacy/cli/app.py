"""`uniner-spacy`: annotate, evaluate, score and serve from the shell."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

import typer

from ..errors import UninerError
from ..io import doc_to_json, read_texts
from ..pipeline.build import uniner_pipe
from ..types import Labels

app = typer.Typer(add_completion=False, help="UniversalNER-style open NER for spaCy.")


def fail(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def _read(path: Path, text_field: str) -> List[Tuple[str, dict]]:
    try:
        return list(read_texts(path, text_field))
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


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


@app.command()
def annotate(
    input: Path = typer.Argument(..., help="Text lines (.txt), JSONL with a text field, or a folder of .txt files"),
    output: Path = typer.Argument(..., help="Output: .jsonl (resumable), .spacy (DocBin) or .html (displaCy)"),
    labels: Optional[str] = typer.Option(None, help="person,organization or 'person=A human;city=A town'"),
    config: Optional[Path] = typer.Option(None, help="spaCy config or saved pipeline with a uniner pipe"),
    batch_size: int = typer.Option(32, help="Docs per nlp.pipe batch"),
    text_field: str = typer.Option("text", help="Field holding the text in JSONL input"),
    resume: bool = typer.Option(True, help="Skip inputs already written to a .jsonl output"),
    ray: bool = typer.Option(False, "--ray", help="Run on Ray: OUTPUT is a folder of ordered JSONL shards"),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster address (default: local or RAY_ADDRESS)"),
    workers: int = typer.Option(2, help="With --ray: pipeline actors (one per GPU or CPU slot)"),
    threads: int = typer.Option(1, help="With --ray: CPU threads per actor"),
    gpus_per_worker: float = typer.Option(0.0, help="With --ray: GPUs per actor (1 for one per GPU)"),
    shard_size: int = typer.Option(1000, help="With --ray: documents per output shard"),
):
    """Annotate a corpus; a .jsonl output picks up where a stopped run left off."""
    from tqdm import tqdm

    from ..pipeline.build import build_nlp

    if ray:
        from ..distributed import annotate_ray

        if output.suffix:
            fail(f"With --ray the output is a folder of shards, not {output.name!r}")
        if not input.exists():
            fail(f"Input {input} does not exist")
        items = _read(input, text_field)
        shards = annotate_ray(items, output, labels=parse_labels(labels) if labels else None, config=config,
                              workers=workers, threads=threads, gpus_per_worker=gpus_per_worker,
                              batch_size=batch_size, shard_size=shard_size, address=ray_address)
        typer.echo(f"Wrote {len(items)} documents to {len(shards)} shards in {output}", err=True)
        return
    kind = output.suffix
    if kind not in (".jsonl", ".spacy", ".html"):
        fail(f"Output must end in .jsonl, .spacy or .html, not {output.name!r}")
    if not input.exists():
        fail(f"Input {input} does not exist")
    items = _read(input, text_field)
    nlp = build_nlp(parse_labels(labels) if labels else None, config)
    done = _count_lines(output) if kind == ".jsonl" and resume else 0
    if done:
        typer.echo(f"Resuming after {done} documents already in {output}", err=True)
    todo = items[done:]
    texts = (t for t, _ in todo)
    bar = tqdm(total=len(todo), unit="doc", desc="annotate")
    docs = []
    output.parent.mkdir(parents=True, exist_ok=True)
    with (output.open("a" if done else "w", encoding="utf8") if kind == ".jsonl" else _null()) as out:
        for doc, (_, meta) in zip(nlp.pipe(texts, batch_size=batch_size), todo):
            if kind == ".jsonl":
                out.write(json.dumps(doc_to_json(doc, meta), ensure_ascii=False) + "\n")
                out.flush()
            else:
                docs.append(doc)
            bar.update(1)
    bar.close()
    if kind == ".spacy":
        from spacy.tokens import DocBin

        DocBin(docs=docs, store_user_data=True).to_disk(output)
    elif kind == ".html":
        from spacy import displacy

        output.write_text(displacy.render(docs, style="ent", page=True), encoding="utf8")
    typer.echo(f"Wrote {len(items)} documents to {output}", err=True)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


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
    config: Optional[Path] = typer.Option(None, help="spaCy config or saved pipeline; default: embedded model"),
    batch_size: int = typer.Option(32),
):
    """Fit score calibration on dev data, so that `threshold` is a probability of being right."""
    from ..evaluation.loaders import load
    from ..pipeline.build import build_nlp
    from ..pipeline.calibration import candidates_vs_gold, fit

    nlp = build_nlp(["entity"], config)
    component = uniner_pipe(nlp)
    component.calibration = None  # fit on raw scores
    scores, correct = [], []
    for path in data:
        examples = load(path, limit=limit)
        labels = list(dict.fromkeys(l for eg in examples for l in eg.labels))
        component.initialize(labels=labels)
        docs = nlp.pipe((eg.text for eg in examples), batch_size=batch_size)
        s, c = candidates_vs_gold(docs, examples)
        scores += s
        correct += c
    calibrator = fit(scores, correct)
    calibrator.to_disk(output, fitted_on=[str(p) for p in data], limit=limit, candidates=len(scores),
                       precision=round(sum(correct) / max(1, len(correct)), 4))
    typer.echo(json.dumps({"output": str(output), "candidates": len(scores), "correct": sum(correct)}))


@app.command()
def serve(
    model: str = typer.Option("embedded", help="HF model name/path, a .gguf file, or 'embedded'"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    batch_size: int = typer.Option(16),
):
    """Serve a UniNER model over an OpenAI-compatible HTTP API."""
    from ..serve import serve as start

    server = start(model, host, port, batch_size=batch_size)
    typer.echo(f"Serving {model} at {server.url}", err=True)
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


if __name__ == "__main__":
    app()
