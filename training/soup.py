"""Average LoRA adapters trained from one start (a model soup) into one adapter, exactly.

    python -m training.soup --out training/checkpoints/gemma-soup6 \\
        training/checkpoints/gemma-phase6/final training/checkpoints/gemma-phase6z/final \\
        [--export uniner_spacy/assets/student-gemma --base embedded-gemma]

Phases warm-started from the same adapter on different data learn different things (phase 6 the
supervised sets' types, phase 6z the open types); averaging their weights keeps much of both
(docs/gemma.md). Each adapter adds `s_i · B_i A_i` to a weight (`s_i = alpha_i / r_i`), so the mean
of those updates, `Σ w_i s_i B_i A_i`, is itself a LoRA update of rank `Σ r_i`: the `A_i` stacked,
the `B_i` side by side, each scaled by `w_i s_i`, and `alpha = rank` (scaling 1). Nothing is
approximated; merged into the base at load, the larger rank costs nothing at run time.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import List, Optional, Sequence

from uniner_spacy.errors import InputError
from uniner_spacy.questions.prompts import LAYOUT_FILE

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
SOUP_FILE = "soup.json"  # in the soup's folder: its parts, their weights and digests
# what must agree between the parts for their updates to add up on the same weights
SAME = ("peft_type", "target_modules", "base_model", "use_dora", "use_rslora", "fan_in_fan_out", "bias",
        "modules_to_save", "layers_to_transform")


def _setting(config: dict, key: str):
    """A config value as compared between parts: lists as sets; the base by its folder's name (the
    converted model's cache folder names its digest; the cache's place differs between machines)."""
    if key == "base_model":
        return Path(config.get("base_model_name_or_path") or "").name
    value = config.get(key)
    return sorted(value) if isinstance(value, list) else value


def soup(adapters: Sequence[Path], out: Path, weights: Optional[Sequence[float]] = None) -> Path:
    """Write the weighted mean of `adapters` (LoRA folders) to `out` as one LoRA adapter; returns `out`.

    `weights` default to equal ones and are normalised to sum to 1."""
    import torch
    from safetensors.torch import load_file, save_file

    if len(adapters) < 2:
        raise InputError("a soup needs at least two adapters")
    weights = [1.0] * len(adapters) if weights is None else list(weights)
    if len(weights) != len(adapters) or min(weights) < 0 or sum(weights) <= 0:
        raise InputError(f"one non-negative weight per adapter, not {weights}")
    weights = [w / sum(weights) for w in weights]
    configs = []
    for folder in adapters:
        if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
            raise InputError(f"{folder} is not a LoRA adapter folder ({CONFIG} and {WEIGHTS})")
        configs.append(json.loads((folder / CONFIG).read_text(encoding="utf-8")))
    for key in SAME:
        values = {json.dumps(_setting(c, key), sort_keys=True) for c in configs}
        if len(values) > 1:
            raise InputError(f"the adapters differ in {key} ({', '.join(sorted(values))}): their updates are not "
                             "to the same weights")
    if configs[0].get("peft_type") != "LORA" or configs[0].get("use_dora") or configs[0].get("use_rslora") or \
            any(c.get("rank_pattern") or c.get("alpha_pattern") for c in configs):
        raise InputError("only plain LoRA adapters (no DoRA, no rsLoRA, one rank and alpha for every module) can "
                         "be averaged this way")
    layouts = {(f / LAYOUT_FILE).read_text(encoding="utf-8") if (f / LAYOUT_FILE).exists() else "" for f in adapters}
    if len(layouts) > 1:
        raise InputError("the adapters were trained on different prompt layouts")
    tables = [load_file(str(f / WEIGHTS)) for f in adapters]
    if len({frozenset(t) for t in tables}) > 1:
        raise InputError("the adapters do not adapt the same modules")
    merged = {}
    for key in tables[0]:
        if ".lora_A." in key:
            merged[key] = torch.cat([t[key] for t in tables], 0)
        elif ".lora_B." in key:
            merged[key] = torch.cat([(t[key].float() * w * c["lora_alpha"] / c["r"]).to(t[key].dtype)
                                     for t, w, c in zip(tables, weights, configs)], 1)
        else:
            raise InputError(f"{key}: only LoRA A and B matrices can be averaged")
    rank = sum(int(c["r"]) for c in configs)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in merged.items()}, str(out / WEIGHTS))
    config = dict(configs[0], r=rank, lora_alpha=rank, rank_pattern={}, alpha_pattern={})
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if (adapters[0] / LAYOUT_FILE).exists():
        shutil.copy2(adapters[0] / LAYOUT_FILE, out / LAYOUT_FILE)
    from .train import data_digest

    parts = [{"adapter": str(f), "weight": round(w, 6), "r": c["r"], "lora_alpha": c["lora_alpha"],
              "sha256": data_digest(str(f / WEIGHTS))} for f, w, c in zip(adapters, weights, configs)]
    (out / SOUP_FILE).write_text(json.dumps({"parts": parts, "rank": rank}, indent=1) + "\n", encoding="utf-8")
    write_card(out, adapters, parts)
    return out


def write_card(out: Path, adapters: Sequence[Path], parts: List[dict]) -> Path:
    """The soup's card: the first part's front matter and licence, what was averaged, then each part's
    data, options and figures from its own card; the first part's Retrain section closes it."""
    from .train import RETRAIN

    cards = [(f / "README.md").read_text(encoding="utf-8") if (f / "README.md").exists() else "" for f in adapters]
    first = cards[0]
    head = first.split("\n## Training data\n")[0].rstrip() if first else "# LoRA adapter soup"
    lines = [head, "", "## Made by averaging", "",
             "The weighted mean of these adapters' weight updates, exactly, as one LoRA of rank "
             f"{sum(p['r'] for p in parts)} (`python -m training.soup`); each part's card gives its data, "
             "options and figures.", "", "| adapter | weight | r | alpha | sha256 |", "|---|---|---|---|---|"]
    lines += [f"| `{p['adapter']}` | {p['weight']:g} | {p['r']} | {p['lora_alpha']} | `{p['sha256'][:12]}…` |"
              for p in parts]
    for k, (card, part) in enumerate(zip(cards, parts), 1):
        body = card.split("\n## Training data\n", 1)[1].split(RETRAIN)[0] if "\n## Training data\n" in card else ""
        lines += ["", f"## Part {k}: `{part['adapter']}`", "", "### Training data", "",
                  *[("#" + line if line.startswith("## ") else line) for line in body.strip().splitlines()]]
    retrain = first.split(RETRAIN, 1)[1] if RETRAIN in first else "\n"
    lines += ["", RETRAIN.strip(), retrain.rstrip(), ""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main(argv: Sequence[str] = ()) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapters", nargs="+", type=Path, help="LoRA adapter folders trained from one start")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--weights", default="", help="comma-separated, one per adapter (default: equal)")
    ap.add_argument("--export", default=None, help="also copy the soup and its card here (training.train's export)")
    ap.add_argument("--base", default="embedded", help="the embedded base the adapters adapt (for the export)")
    args = ap.parse_args(list(argv) or None)
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    out = soup(args.adapters, args.out, weights)
    if args.export:
        from .train import export

        export(out, Path(args.export), args.base)
    print(f"soup of {len(args.adapters)} adapters written to {out}" + (f" and {args.export}" if args.export else ""))


if __name__ == "__main__":
    main()
