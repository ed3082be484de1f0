"""Package a trained student adapter for `uniner.HF.v1`, and evaluate it.

    python -m training.package package training/out/run/final --out packages/student \
        --labels person,organization,location --check
    python -m training.package evaluate packages/student/config.cfg DATA [DATA ...] \
        --limit 50 --out metrics/student.json

`package` writes `<out>` as a saved spaCy pipeline (`nlp.to_disk`): a blank English
pipeline with the `uniner` pipe whose backend is the SmolLM2 base without the shipped
adapter (`embedded-base`) plus this adapter, which the pipe copies into the folder
(`<out>/uniner/backend/adapter`). The folder can move: `spacy.load(<out>)` finds the
adapter inside it, whatever path the config names.

    nlp.add_pipe("uniner", config={"labels": [...], "backend": {
        "@misc": "uniner.HF.v1", "model": "embedded-base", "adapter": "<run>/final"}})

`--check` loads the saved pipeline and runs it on one sentence. `evaluate` runs the
evaluation harness (`uniner_spacy.evaluation.runner.evaluate_files`, the same as
`uniner-spacy evaluate --config`) and writes its JSON result.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import List, Optional, Sequence


def pipe_config(adapter: Path, labels: Sequence[str], base: str = "embedded-base") -> dict:
    """The `nlp.add_pipe("uniner", config=...)` dict that loads this adapter."""
    return {"labels": list(labels),
            "backend": {"@misc": "uniner.HF.v1", "model": base, "adapter": str(adapter)}}


def package(adapter_dir: Path, out: Path, labels: Sequence[str], base: str = "embedded-base",
            check: bool = False) -> dict:
    import spacy

    if not (adapter_dir / "adapter_config.json").exists():
        raise SystemExit(f"{adapter_dir} has no adapter_config.json: is it a LoRA run's `final` folder? "
                         "(a full fine-tune is a model folder: use it as `model` directly)")
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config=pipe_config(adapter_dir.resolve(), labels, base))
    nlp.to_disk(out)
    adapter = out / "uniner" / "backend" / "adapter"
    info = {"pipeline": str(out), "adapter": str(adapter), "files": sorted(f.name for f in adapter.iterdir()),
            "base": base, "labels": list(labels)}
    if check:
        loaded = spacy.load(out)
        started = time.time()
        doc = loaded("Marie Curie worked at the University of Paris.")
        info["check"] = {"text": doc.text, "ents": [[e.text, e.label_] for e in doc.ents],
                         "seconds": round(time.time() - started, 2)}
    (out / "package.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return info


def evaluate(config: Path, data: Sequence[Path], limit: Optional[int], out: Path, protocol: str,
             batch_size: int) -> dict:
    from uniner_spacy.evaluation.runner import evaluate_files

    started = time.time()
    result = evaluate_files(data, config=config, limit=limit, protocol=protocol, batch_size=batch_size)
    result["seconds"] = round(time.time() - started, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    return result


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("package", help="save a pipeline that carries the adapter")
    pk.add_argument("adapter", type=Path, help="the trainer's final folder (LoRA adapter)")
    pk.add_argument("--out", type=Path, required=True)
    pk.add_argument("--labels", default="person,organization,location")
    pk.add_argument("--base", default="embedded-base")
    pk.add_argument("--check", action="store_true", help="load it and tag one sentence")
    ev = sub.add_parser("evaluate", help="the evaluation harness on data files")
    ev.add_argument("config", type=Path, help="the pipeline folder `package` wrote (or a config.cfg)")
    ev.add_argument("data", type=Path, nargs="+")
    ev.add_argument("--limit", type=int, default=None)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--protocol", default="both")
    ev.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    if args.command == "package":
        labels: List[str] = [x.strip() for x in args.labels.split(",") if x.strip()]
        return package(args.adapter, args.out, labels, args.base, args.check)
    return evaluate(args.config, args.data, args.limit, args.out, args.protocol, args.batch_size)


if __name__ == "__main__":
    main()
