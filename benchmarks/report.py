"""Results tables and charts from `evaluate_pipeline`'s JSON, beside published figures.

Data sets are rows, systems columns, F1 ×100. Published figures (UNINER.md)
are test-split numbers; ours are whatever split was evaluated, so the caption
says which protocol was used and that the splits may differ.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

# Zero-shot CrossNER + MIT entity F1 (UniNER and ChatGPT rows from the UniNER
# paper, GLiNER rows from the GLiNER paper), keyed by our data set names.
_ZS_KEYS = ("mit_movie", "mit_restaurant", "crossner_ai", "crossner_literature",
            "crossner_music", "crossner_politics", "crossner_science")
PUBLISHED_ZERO_SHOT: Dict[str, Dict[str, float]] = {
    name: dict(zip(_ZS_KEYS, row)) for name, row in {
        "ChatGPT": (5.3, 32.8, 52.4, 39.8, 66.6, 68.5, 67.0),
        "UniNER-7B": (42.4, 31.7, 53.6, 59.3, 67.0, 60.9, 61.1),
        "UniNER-13B": (48.7, 36.2, 54.2, 60.9, 64.5, 61.4, 63.5),
        "GLiNER-L": (57.2, 42.9, 57.2, 64.4, 69.6, 72.6, 62.6),
    }.items()
}
# Supervised UniNER-7B (dataset-specific template, trained on 40 sets), test F1.
PUBLISHED_SUPERVISED: Dict[str, Dict[str, float]] = {
    "UniNER-7B (sup.)": {
        "conll2003": 93.30, "anatem": 88.65, "bc2gm": 82.42, "bc5cdr": 89.34, "ncbi": 86.96,
        "broad_twitter": 81.25, "harveyner": 74.21, "mit_movie": 90.17, "mit_restaurant": 82.35,
        "wikiann_en": 84.91, "wikineural_en": 93.28, "genia": 77.54,
    }
}
PUBLISHED: Dict[str, Dict[str, float]] = {**PUBLISHED_ZERO_SHOT, **PUBLISHED_SUPERVISED}

Results = Mapping[str, Any]


def _systems(results: Union[Results, Mapping[str, Results]]) -> Dict[str, Results]:
    """One evaluate JSON ({"datasets": ...}) or score_files result, or several keyed by system."""
    if "datasets" in results:
        return {str(results.get("system", "ours")): results}
    if "dataset" in results and "string" in results:  # one score_files result
        return {"ours": {"datasets": {results["dataset"]: results}}}
    return {name: _systems(r)["ours"] if "dataset" in r else r for name, r in results.items()}


def _f1(result: Optional[Mapping[str, Any]], protocol: str) -> Optional[float]:
    scores = (result or {}).get(protocol)
    return None if not scores else 100.0 * float(scores["f1"])


def _cell(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.1f}"


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present and len(present) == len(values) else None


def render_table(results_json: Union[Results, Mapping[str, Results]], protocol: str = "string",
                 published: Optional[Mapping[str, Mapping[str, float]]] = None) -> str:
    """A Markdown table: data sets × (our systems, then published systems), F1 ×100.

    The average row is the benchmark score (mean of per-data-set F1), shown
    for a column only where that column has every row.
    """
    systems = _systems(results_json)
    published = PUBLISHED if published is None else published
    rows: List[str] = list(dict.fromkeys(d for r in systems.values() for d in r["datasets"]))
    refs = {name: figs for name, figs in published.items() if any(d in figs for d in rows)}
    columns: Dict[str, List[Optional[float]]] = {
        name: [_f1(r["datasets"].get(d), protocol) for d in rows] for name, r in systems.items()}
    columns.update({name: [figs.get(d) for d in rows] for name, figs in refs.items()})
    header = ["data set", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, dataset in enumerate(rows):
        lines.append("| " + " | ".join([dataset, *(_cell(col[i]) for col in columns.values())]) + " |")
    lines.append("| **average** | " + " | ".join(_cell(_mean(col)) for col in columns.values()) + " |")
    caption = (f"F1 ×100, {protocol} protocol"
               + (" (UniNER official: normalised strings per (text, type) query)" if protocol == "string"
                  else " (exact character spans)")
               + ". Published figures are test-split results from the papers (UNINER.md); "
               "compare only where our split is the same.")
    return "\n".join(lines) + "\n\n" + caption + "\n"


def plot_results(results_json: Union[Results, Mapping[str, Results]], path: Union[str, Path],
                 protocol: str = "string", with_published: bool = True) -> Optional[Path]:
    """A grouped bar chart PNG of per-data-set F1; None (and no file) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    systems = _systems(results_json)
    rows = list(dict.fromkeys(d for r in systems.values() for d in r["datasets"]))
    series = {name: [_f1(r["datasets"].get(d), protocol) for d in rows] for name, r in systems.items()}
    if with_published:
        series.update({name: [figs.get(d) for d in rows] for name, figs in PUBLISHED.items()
                       if any(d in figs for d in rows)})
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(rows)), 4.0))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + k * width for i, v in enumerate(values) if v is not None]
        ax.bar(xs, [v for v in values if v is not None], width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    ax.set_xticklabels(rows, rotation=30, ha="right")
    ax.set_ylabel(f"F1 ×100 ({protocol} protocol)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
