"""Whether a student keeps a shown fine type's mentions out of its generic type's answer.

The label-set prompt is meant to teach that `person` beside `politician` means the persons who
are not politicians. This asks MultiCoNER II *dev* passages, regrouped as `training.mixture
--regroup` regroups its train passages (a generic type beside one to three of its fine ones),
every shown type, and prints one JSON line: of the gold mentions of a shown fine type, how many the
fine question found and how many the generic question claimed as well (the confusion; 0 is right),
and of the mentions answered under the generic, how many it found.

    python benchmarks/regrouped.py --backend '{"adapter": ".train/run6d/final"}' [--no-label-set] [--n 150]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.mixture import DATA_ROOT, Answers, regroup_confusion, regrouped  # noqa: E402


def main(argv: Sequence[str] = ()) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="{}", help="JSON settings over the default backend's")
    ap.add_argument("--no-label-set", action="store_true", help="ask without the label-set prompt")
    ap.add_argument("--n", type=int, default=150, help="dev passages")
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", type=Path, default=DATA_ROOT)
    args = ap.parse_args(list(argv) or None)
    import torch

    from uniner_spacy.evaluation.loaders import iter_data_files, load
    from uniner_spacy.pipeline.component import DEFAULT_BACKEND
    from uniner_spacy.questions.parsing import parse_answer
    from uniner_spacy.registry import registry
    from uniner_spacy.types import Query

    torch.set_num_threads(args.threads)
    dev = [f for f in iter_data_files(args.data, folders=("open_types",))
           if f.dataset == "multiconer2_en" and f.split == "dev"]
    if not dev:
        raise SystemExit(f"no MultiCoNER II dev split under {args.data}/open_types")
    examples = [ex for ex in load(dev[0].path, format=dev[0].format, source="multiconer2_en") if ex.text.strip()]
    passages = regrouped(examples, args.n, args.seed)
    backend = registry.resolve({"b": {**DEFAULT_BACKEND, **json.loads(args.backend)}})["b"]
    queries: List[Query] = []
    owners: List[int] = []
    for k, ex in enumerate(passages):
        shown = () if args.no_label_set else tuple(ex.labels)
        for label in ex.labels:
            queries.append(Query(ex.text, label, label, label_set=shown))
            owners.append(k)
    answers: Answers = {}
    for q, k, gen in zip(queries, owners, backend(queries)):
        if gen.error:
            raise SystemExit(f"a query failed: {gen.error}")
        answers[(k, q.entity_type)] = set(parse_answer(gen.text).mentions)
    print(json.dumps({"backend": json.loads(args.backend), "label_set": not args.no_label_set,
                      "passages": len(passages), "seed": args.seed, **regroup_confusion(passages, answers)}))


if __name__ == "__main__":
    main()
