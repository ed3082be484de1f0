"""Loaders for every data format we use, and the two NER scoring protocols.

`runner` and `calibrate` (which import spaCy) are loaded on first use of `evaluate_pipeline`,
`evaluate_files` and `fit_calibration`.
"""
from __future__ import annotations

from typing import Any

from .labels import generic_label, make_label_mapper, natural_label
from .loaders import FORMATS, DataFile, Loaded, detect_format, iter_data_files, load, load_report
from .protocols import (
    PRF,
    benchmark_score,
    examples_to_predictions,
    normalize_answer,
    official_answer_items,
    score_files,
    score_queries,
)

__all__ = [
    "FORMATS", "DataFile", "Loaded", "PRF", "benchmark_score", "detect_format", "evaluate_files",
    "evaluate_pipeline", "examples_to_predictions", "fit_calibration", "generic_label", "iter_data_files",
    "load", "load_report", "make_label_mapper", "natural_label", "normalize_answer",
    "official_answer_items", "score_files", "score_queries",
]


def __getattr__(name: str) -> Any:
    if name in ("evaluate_pipeline", "evaluate_files"):
        from . import runner

        return getattr(runner, name)
    if name == "fit_calibration":
        from .calibrate import fit_calibration

        return fit_calibration
    raise AttributeError(name)
