"""The student's own hidden states as a type chooser or verifier (issue 35, design 4; not kept).

A probe, not a stage: each (passage, type) answer of the student is replayed after its prompt
(teacher forced) and the hidden states at each mention's closing quote are kept, from the last
layer and layer 20; a logistic model fitted on the training claims of `training.chooser collect`
("is this (span, label) a gold entity") then chooses among the labels that claimed each written
span of a run, or drops written entities it scores below a threshold. Answers are rebuilt from the
candidates (mentions in passage order), so no answer cache is needed.

    python benchmarks/hidden_probe.py hidden --claims .train/chooser-most/claims.jsonl --out probe/train
    python benchmarks/hidden_probe.py hidden --predictions R6/zeroshot.predictions.jsonl --out probe/dev
    python benchmarks/hidden_probe.py fit --claims .train/chooser-most/claims.jsonl --train probe/train \\
        --dev probe/dev --predictions R6/zeroshot.predictions.jsonl --limit 60 --write probe/runs

Prints the leave-one-set-out check on the training claims, then one JSON line per decision rule
with the dev means; `--write` keeps each rule's predictions for `paired.py`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

from ceiling import f1_by_source
from quality import DATA, SUITES

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.chooser import _choice_groups, choice_accuracy  # noqa: E402

LAYERS = (-1, 20)
Key = Tuple[str, str, str]  # (passage, type asked, mention)


def claim_items(claims: Path) -> List[Tuple[str, str, List[str]]]:
    items: Dict[Tuple[str, str], Dict[str, int]] = {}
    for line in claims.open(encoding="utf-8"):
        r = json.loads(line)
        for s, e, label, _score, src, _match in r["candidates"]:
            items.setdefault((r["text"], src or label), {}).setdefault(r["text"][s:e], s)
    return [(p, t, sorted(ms, key=ms.__getitem__)) for (p, t), ms in items.items()]


def prediction_items(predictions: Path) -> List[Tuple[str, str, List[str]]]:
    items = []
    for line in predictions.open(encoding="utf-8"):
        r = json.loads(line)
        ms: Dict[str, int] = {}
        for s, e in sorted(r["candidates"]):
            ms.setdefault(r["text"][s:e], s)
        if ms:
            items.append((r["text"], r["type"], list(ms)))
    return items


def hidden(items, threads: int, batch: int = 16) -> Dict[Key, "object"]:
    """{(passage, type, mention): hidden states at the mention's closing quote}, release 6's student."""
    import numpy as np
    import torch

    from uniner_spacy.backends.hf.backend import HFBackend

    torch.set_num_threads(threads)
    b = HFBackend("embedded", dtype="bfloat16", attention="model", fused=False, prefix_sharing=False)
    tok = b.tokenizer
    tok.pad_token = tok.pad_token or tok.eos_token
    tok.padding_side = "right"
    out: Dict[Key, object] = {}
    items = sorted(items, key=lambda x: len(x[0]))
    start = time.perf_counter()
    for k in range(0, len(items), batch):
        chunk = items[k : k + batch]
        texts, closes = [], []
        for p, t, ms in chunk:
            prompt = b.template.render(p, t) + " ["
            pos = []
            for j, m in enumerate(ms):
                prompt += json.dumps(m, ensure_ascii=False)
                pos.append(len(prompt) - 1)
                prompt += ", " if j < len(ms) - 1 else "]"
            texts.append(prompt)
            closes.append(pos)
        enc = tok(texts, return_offsets_mapping=True, padding=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")
        with torch.inference_mode():
            states = b.model(**enc, output_hidden_states=True).hidden_states
        for i, ((p, t, ms), pos) in enumerate(zip(chunk, closes)):
            off = offsets[i].tolist()
            for m, c in zip(ms, pos):
                at = next(j for j, (s, e) in enumerate(off) if s <= c < e)
                out[(p, t, m)] = np.concatenate([states[layer][i, at].float().numpy() for layer in LAYERS])
        print(json.dumps({"done": k + len(chunk), "of": len(items), "seconds": round(time.perf_counter() - start)}),
              flush=True)
    return out


def save(table: Dict[Key, "object"], out: Path) -> None:
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    keys = list(table)
    np.save(out.with_suffix(".npy"), np.stack([table[k] for k in keys]).astype(np.float32))
    out.with_suffix(".keys.json").write_text(json.dumps(keys), encoding="utf-8")


def load(path: Path) -> Dict[Key, "object"]:
    import numpy as np

    x = np.load(path.with_suffix(".npy"))
    return dict(zip((tuple(k) for k in json.loads(path.with_suffix(".keys.json").read_text())), x))


def train_matrix(claims: Path, table):
    import numpy as np

    xs, ys, sets, groups = [], [], [], []
    n = 0
    for line in claims.open(encoding="utf-8"):
        r = json.loads(line)
        gold = {(s, e, lab) for s, e, lab in r["gold"]}
        by_span = defaultdict(list)
        for s, e, label, _score, src, _match in r["candidates"]:
            xs.append(table[(r["text"], src or label, r["text"][s:e])])
            ys.append(float((s, e, label) in gold))
            sets.append(r["source"])
            groups.append(-1)
            by_span[(s, e)].append(len(ys) - 1)
        for members in by_span.values():
            if len(members) > 1:
                for i in members:
                    groups[i] = n
                n += 1
    return np.stack(xs), np.array(ys), np.array(sets), np.array(groups)


def fit(args) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from uniner_spacy.evaluation.protocols import examples_to_predictions
    from uniner_spacy.evaluation.runner import load_files

    x, y, sets, groups = train_matrix(args.claims, load(args.train))
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    held = {}
    for name in sorted(set(sets)):
        m = sets != name
        p = LogisticRegression(C=args.C, max_iter=3000).fit(z[m], y[m]).predict_proba(z[~m])[:, 1]
        held[name] = {"auc": round(roc_auc_score(y[~m], p), 3) if 0 < y[~m].sum() < (~m).sum() else None,
                      "choice": round(choice_accuracy(p, y[~m], groups[~m]), 3),
                      "groups": len(_choice_groups(y[~m], groups[~m]))}
    print(json.dumps({"C": args.C, "claims": len(y), "right": int(y.sum()), "held_out": held}))
    model = LogisticRegression(C=args.C, max_iter=3000).fit(z, y)
    dev = load(args.dev)
    keys = list(dev)
    prob = dict(zip(keys, model.predict_proba((np.stack([dev[k] for k in keys]) - mean) / scale)[:, 1]))
    predicted = [json.loads(line) for line in args.predictions.open(encoding="utf-8")]
    gold = examples_to_predictions(load_files([DATA / p for p in SUITES[args.suite]], limit=args.limit))
    claimed = defaultdict(set)
    for p in predicted:
        for s, e in p["candidates"]:
            claimed[(p["text"], (s, e))].add(p["type"])
    for tau in (None, 0.05, 0.1, 0.2):
        for mode in ("choose", "keep"):  # choose among the labels that claimed the span; keep the run's
            moved = defaultdict(list)
            for p in predicted:
                for s, e in p["spans"]:
                    mention = p["text"][s:e]
                    score = {lab: prob.get((p["text"], lab, mention), 0.0) for lab in claimed[(p["text"], (s, e))]}
                    label = max(score, key=score.__getitem__) if mode == "choose" else p["type"]
                    if tau is None or score.get(label, 1.0) >= tau:
                        moved[(p["text"], label)].append((mention, [s, e]))
            out = [{**{k: p[k] for k in ("text", "type", "source")},
                    "prediction": list(dict.fromkeys(m for m, _ in moved[(p["text"], p["type"])])),
                    "spans": [sp for _, sp in moved[(p["text"], p["type"])]]} for p in predicted]
            f1 = {k: round(v, 2) for k, v in f1_by_source(gold, out).items()}
            name = f"{mode}-{tau}"
            print(json.dumps({"rule": name, "mean": round(sum(f1.values()) / len(f1), 2), **f1}))
            if args.write:
                args.write.mkdir(parents=True, exist_ok=True)
                with (args.write / f"{name}.predictions.jsonl").open("w", encoding="utf-8") as f:
                    f.writelines(json.dumps(r) + "\n" for r in out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hidden")
    src = h.add_mutually_exclusive_group(required=True)
    src.add_argument("--claims", type=Path, help="training claims (training.chooser collect)")
    src.add_argument("--predictions", type=Path, help="a quality.py run's predictions (candidates kept)")
    h.add_argument("--out", type=Path, required=True)
    h.add_argument("--threads", type=int, default=1)
    f = sub.add_parser("fit")
    f.add_argument("--claims", type=Path, required=True)
    f.add_argument("--train", type=Path, required=True)
    f.add_argument("--dev", type=Path, required=True)
    f.add_argument("--predictions", type=Path, required=True)
    f.add_argument("--suite", choices=sorted(SUITES), default="zeroshot")
    f.add_argument("--limit", type=int, required=True)
    f.add_argument("--C", type=float, default=0.01)
    f.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    if args.command == "hidden":
        items = claim_items(args.claims) if args.claims else prediction_items(args.predictions)
        save(hidden(items, args.threads), args.out)
    else:
        fit(args)


if __name__ == "__main__":
    main()
