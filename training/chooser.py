"""Train the type chooser (`uniner.Chooser.v1`) on the student's own candidates over training text.

    python -m training.chooser collect --out .train/chooser/claims.jsonl   # runs the student (cached)
    python -m training.chooser fit --claims .train/chooser/claims.jsonl --out .train/chooser

`collect` asks the student every label of each passage with the stages off, and writes each
passage's candidates (span, label, answer score, question, alignment) beside its gold entities. The
passages: MultiCoNER II train passages regrouped as a generic type beside a few of its fine ones, or
beside most of them with `--fines most` (`regrouped_sets`: what `person` beside `politician` means;
give each a claims file and cache of its own), and the first passages of
the train splits of open-type and supervised sets, each asked its own label set. Never
`zeroshot_dev/`. Answers go through the answer cache (`uniner.Cached.v1`), so a rerun, or a run
stopped and started again, asks the student only what it has not answered yet; rows are appended
per batch, and a rerun skips the passages already written.

`fit` computes `uniner_spacy.stages.chooser.features` for every candidate and fits a logistic
model on "this (span, label) is a gold entity", grouped by data set for a leave-one-set-out check.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

from uniner_spacy.errors import InputError
from uniner_spacy.types import AnnotatedText, Candidate

from .mixture import DATA_ROOT, MULTICONER_GROUPS, asked_as, group_of

# open-type and supervised train sets whose label sets mix kinds of names and things, as the
# zero-shot sets do; a few passages each keep collection within a CPU session
SETS = ("gum", "re3d", "wikigold", "musicreconer", "scierc", "few_tk", "cyner_mitre", "sec_filings",
        "wnut17", "finer_ord", "hipe2022_topres19th_en", "conll2003", "stackoverflow_ner", "tasteset2")


FINES = ("few", "most")


def _check_fines(fines: str) -> None:
    if fines not in FINES:
        raise InputError(f"fines must be one of {', '.join(FINES)}, not {fines!r}")


def regrouped_sets(examples: Sequence[AnnotatedText], n: int, seed: int, kinds: int = 12,
                   fines: str = "few") -> List[AnnotatedText]:
    """`n` MultiCoNER II passages, each asked one of `kinds` label sets: every generic type beside
    some of its fine ones (as CrossNER asks `person` beside `writer`); a mention of a fine type not
    shown is the generic's. `fines="few"` shows one to three fine types of each generic; "most" shows
    all of them or all but one, so the generic is what the fine types leave, as in CrossNER's label
    sets, which name most of a domain's fine types. Few label sets, so that passages sharing one go
    through one pipeline in batches (`training.mixture.regrouped` draws one per passage)."""
    _check_fines(fines)
    rng = random.Random(f"{seed}-chooser" if fines == "few" else f"{seed}-chooser-{fines}")
    generic_of = group_of()
    sets = []
    for _ in range(kinds):
        shown: List[str] = []
        for g, fines_of_g in MULTICONER_GROUPS.items():
            named = [f for f in fines_of_g if not f.startswith("other ")]
            m = len(named)
            k = rng.randint(1, min(3, m)) if fines == "few" else rng.randint(max(1, m - 1), m)
            shown += [g] + rng.sample(named, k)
        sets.append(shown)
    pool = [ex for ex in examples if any(e.label in generic_of for e in ex.entities)]
    out = []
    for k, ex in enumerate(rng.sample(pool, min(n, len(pool)))):
        out.append(asked_as(ex, sets[k % kinds], generic_of))
    return out


def passages(data: Path, n_regrouped: int, per_set: int, seed: int, fines: str = "few") -> List[AnnotatedText]:
    """The collection's passages, in a fixed order for a seed."""
    from uniner_spacy.evaluation.loaders import iter_data_files, load

    by_set: Dict[str, List[AnnotatedText]] = {}
    for f in iter_data_files(data, folders=("open_types", "supervised"), splits=("train",)):
        if f.dataset in SETS or f.dataset == "multiconer2_en":
            limit = None if f.dataset == "multiconer2_en" else per_set * 4
            by_set.setdefault(f.dataset, []).extend(load(f.path, format=f.format, limit=limit, source=f.dataset))
    rng = random.Random(seed)
    out = regrouped_sets(by_set.pop("multiconer2_en", []), n_regrouped, seed, fines=fines)
    for name in sorted(by_set):
        pool = [ex for ex in by_set[name] if ex.entities and len(ex.labels) > 1 and len(ex.text) < 1500]
        out += rng.sample(pool, min(per_set, len(pool)))
    return out


def _candidates(doc, spans_key: str = "uniner") -> List[list]:
    return [[s.start_char, s.end_char, s.label_, s._.uniner_raw_score, s._.uniner_source, s._.uniner_match]
            for s in doc.spans.get(spans_key, [])]


def options_file(out: Path) -> Path:
    """Beside a claims file: the options that chose its passages (`claims.jsonl` → `claims.run.json`)."""
    return out.with_suffix(".run.json")


def _same_options(out: Path, options: dict) -> None:
    """Refuse to append to claims collected with other options: a resumed run skips the passages
    already written, so a second `--fines` would add its passages beside the first's, unnoticed."""
    path = options_file(out)
    if path.exists():
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if recorded != options:
            raise InputError(f"{out} was collected with {recorded}, not {options}: give this collection its "
                             "own --out and --cache, or the same options to resume it")
    elif not out.exists() or out.stat().st_size == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(options) + "\n", encoding="utf-8")
    else:  # claims from before the options were recorded: what chose them is unknown
        raise InputError(f"{out} has no {path.name} saying which options chose its passages: collect into a "
                         f"new --out, or write the options it was collected with to {path}")


def collect(out: Path, data: Path = DATA_ROOT, n_regrouped: int = 400, per_set: int = 30, seed: int = 0,
            cache: Path = Path(".train/chooser/answers.sqlite"), batch_size: int = 32, threads: int = 1,
            fines: str = "few") -> int:
    """Append the claims of the passages not yet in `out`; returns how many were added. `out` may only
    be resumed with the options it was started with (`claims.run.json` beside it)."""
    import spacy
    import torch

    from uniner_spacy.pipeline.component import DEFAULT_BACKEND

    _check_fines(fines)
    _same_options(out, {"regrouped": n_regrouped, "per_set": per_set, "seed": seed, "fines": fines})
    torch.set_num_threads(threads)
    done = {(r["source"], r["text"]) for r in _rows(out)} if out.exists() else set()
    todo = [ex for ex in passages(data, n_regrouped, per_set, seed, fines) if (ex.source, ex.text) not in done]
    backend = {"@misc": "uniner.Cached.v1", "backend": DEFAULT_BACKEND, "path": str(cache)}
    added = 0
    start = time.perf_counter()
    by_labels: Dict[tuple, List[AnnotatedText]] = {}
    for ex in todo:  # one pipeline per label set, its passages in batches; the model is loaded once
        by_labels.setdefault(tuple(ex.labels), []).append(ex)
    with out.open("a", encoding="utf-8") as f:
        for labels, group in by_labels.items():
            nlp = spacy.blank("en")
            nlp.add_pipe("uniner", config={"labels": list(labels), "backend": backend, "stages": {}})
            for i in range(0, len(group), batch_size):
                batch = group[i : i + batch_size]
                for ex, doc in zip(batch, nlp.pipe([ex.text for ex in batch], batch_size=batch_size)):
                    f.write(json.dumps({"source": ex.source, "text": ex.text, "labels": list(ex.labels),
                                        "candidates": _candidates(doc),
                                        "gold": [[e.start, e.end, e.label] for e in ex.entities]}) + "\n")
                    added += 1
                f.flush()
                print(json.dumps({"done": len(done) + added, "of": len(done) + len(todo),
                                  "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    return added


def _rows(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def claim_matrix(rows: Sequence[dict]):
    """Features, targets, data set and conflict group (-1: none) of every candidate of `rows`."""
    import numpy as np
    import spacy

    from uniner_spacy.stages.chooser import features
    from uniner_spacy.stages.conflicts import conflict_groups
    from uniner_spacy.stages.embeddings import shared_embedder

    nlp = spacy.blank("en")
    docs = [nlp.make_doc(r["text"]) for r in rows]
    cands = [[Candidate(s, e, l, score=float(x if x is not None else 1.0), source=src or l, match=m or "exact",
                        raw_score=x) for s, e, l, x, src, m in r["candidates"]] for r in rows]
    feats = features(docs, cands, shared_embedder())
    xs, ys, sets, groups = [], [], [], []
    n_groups = 0
    for r, cs, x in zip(rows, cands, feats):
        gold = {(s, e, l) for s, e, l in r["gold"]}
        xs.append(x)
        ys += [float((c.start, c.end, c.label) in gold) for c in cs]
        sets += [r["source"]] * len(cs)
        group = [-1] * len(cs)
        for members in conflict_groups(cs):
            for i in members:
                group[i] = n_groups
            n_groups += 1
        groups += group
    return np.concatenate(xs), np.asarray(ys), np.asarray(sets), np.asarray(groups)


def _choice_groups(y, groups) -> list:
    """The conflict groups with exactly one right candidate: what a choice can learn from."""
    import numpy as np

    out = []
    for g in np.unique(groups[groups >= 0]):
        members = np.flatnonzero(groups == g)
        if y[members].sum() == 1:
            out.append((members, int(np.flatnonzero(y[members])[0])))
    return out


def fit_choice(z, y, groups, c: float):
    """A conditional logit: softmax over each conflict group's candidates, the right one as target;
    L2 penalty 1/(2c) on the weights. Returns (coef, intercept); the intercept cancels in a softmax."""
    import torch

    chosen = _choice_groups(y, groups)
    zt = torch.tensor(z, dtype=torch.float64)
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    members = [torch.tensor(m) for m, _ in chosen]
    targets = [t for _, t in chosen]
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        scores = zt @ w
        loss = sum(-torch.log_softmax(scores[m], 0)[t] for m, t in zip(members, targets)) / max(1, len(members))
        loss = loss + (w @ w) / (2 * c * max(1, len(members)))
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), 0.0


def choice_accuracy(scores, y, groups) -> float:
    chosen = _choice_groups(y, groups)
    return sum(int(scores[m].argmax() == t) for m, t in chosen) / max(1, len(chosen))


def fit(claims: Path, out_dir: Path, c: float = 1.0, objective: str = "choice", without: Sequence[str] = ()) -> dict:
    """Fit the chooser and write `weights.json`; returns counts and the leave-one-set-out check.

    `choice`: which of the labels that claimed a span is right (a softmax over each conflict group);
    `verify`: whether each candidate is right (a logistic model over every candidate). Features named
    in `without` get a weight of 0 (an ablation)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from uniner_spacy.stages.chooser import FEATURES, OBJECTIVES, ChooserWeights

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    rows = [r for r in _rows(claims) if r["candidates"]]
    x, y, sets, groups = claim_matrix(rows)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    z[:, [FEATURES.index(f) for f in without]] = 0.0

    def train(mask):
        if objective == "choice":
            return fit_choice(z[mask], y[mask], groups[mask], c)
        model = LogisticRegression(C=c, max_iter=2000).fit(z[mask], y[mask])
        return model.coef_[0], float(model.intercept_[0])

    held = {}
    for name in sorted(set(sets)):
        mask = sets != name
        if not mask.any() or y[mask].min() == y[mask].max():
            continue
        coef, _ = train(mask)
        held[name] = {"choice": round(choice_accuracy(z[~mask] @ coef, y[~mask], groups[~mask]), 4),
                      "by_score": round(choice_accuracy(x[~mask, 0], y[~mask], groups[~mask]), 4),
                      "groups": len(_choice_groups(y[~mask], groups[~mask]))}
    coef, intercept = train(np.ones(len(y), dtype=bool))  # every set
    meta = {"objective": objective, "claims": int(len(y)), "right": int(y.sum()), "passages": len(rows),
            "choice_groups": len(_choice_groups(y, groups)), "sets": sorted(set(sets)),
            "held_out": held, "C": c, "without": list(without)}
    weights = ChooserWeights(coef, intercept, mean, scale, meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "weights.json").write_text(weights.to_json(), encoding="utf-8")
    return meta


def main(argv: Sequence[str] = ()) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("collect")
    a.add_argument("--out", type=Path, default=Path(".train/chooser/claims.jsonl"))
    a.add_argument("--data", type=Path, default=DATA_ROOT)
    a.add_argument("--regrouped", type=int, default=400)
    a.add_argument("--per-set", type=int, default=30)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--cache", type=Path, default=Path(".train/chooser/answers.sqlite"))
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--fines", choices=FINES, default="few",
                   help="how many of a generic type's fine types each MultiCoNER label set shows")
    b = sub.add_parser("fit")
    b.add_argument("--claims", type=Path, default=Path(".train/chooser/claims.jsonl"))
    b.add_argument("--out", type=Path, default=Path(".train/chooser"))
    b.add_argument("--C", type=float, default=1.0)
    b.add_argument("--without", default="", help="features left out, comma-separated (an ablation)")
    b.add_argument("--objective", default="choice", help="choice (among a span's labels) or verify (each claim)")
    args = ap.parse_args(list(argv) or None)
    if args.command == "collect":
        collect(args.out, args.data, args.regrouped, args.per_set, args.seed, args.cache, threads=args.threads,
                fines=args.fines)
    else:
        print(json.dumps(fit(args.claims, args.out, args.C, args.objective, [f for f in args.without.split(',') if f])))


if __name__ == "__main__":
    main()
