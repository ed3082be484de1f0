"""Fit a pipeline's score calibration on dev data: the Python API behind `uniner-spacy calibrate`.

The pipeline (a config or saved pipeline; default: the embedded student) annotates the gold files
without a calibration, so each candidate's score is the one after the stages, which the fit maps;
`pipeline.calibration.fit` maps those scores to how often such a candidate is gold. The JSON it
writes holds, beside the breakpoints, a reliability table and its expected calibration error on
the fitted texts and, with `holdout`, on texts the fit never saw (docs/config.md).

    summary = fit_calibration(["dev.json"], "calibration.json", limit=500, holdout=200)
    nlp.add_pipe("uniner", config={"calibration": {"@misc": "uniner.Calibration.v1",
                                                   "path": "calibration.json"}})
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import ConfigError
from ..pipeline.calibration import candidates_vs_gold, expected_calibration_error, fit, reliability
from .loaders import load

Scored = Tuple[List[float], List[bool], List[str]]  # candidate scores, whether each is gold, its label


def fit_calibration(
    data: Sequence[Union[str, Path]],
    output: Union[str, Path],
    *,
    limit: Optional[int] = None,
    holdout: int = 0,
    min_per_label: int = 200,
    config: Optional[Union[str, Path]] = None,
    backend: Optional[Dict[str, Any]] = None,
    batch_size: int = 32,
) -> Dict[str, Any]:
    """Fit the calibration on the first `limit` texts of each gold file in `data` (all without one),
    write it to `output` and return a summary: candidates, how many are right, the labels with a
    mapping of their own (`min_per_label` candidates), and the calibration error before and after on
    the fitted texts and on the `holdout` texts after the first `limit` of each file (not fitted on).
    `backend` settings go over the default backend's where there is no `config` (`{"model":
    "embedded-gemma"}` fits the Gemma student's calibration).
    Raises `ConfigError` for `holdout` without `limit`, and for fewer than 10 candidates to fit."""
    from ..pipeline.build import build_nlp, uniner_pipe

    if holdout and limit is None:
        raise ConfigError("holdout needs limit: the held-out texts are the ones after the first limit of each file")
    paths = [Path(p) for p in data]
    if backend and config is not None:
        raise ConfigError("give a config or backend settings, not both: the config names its backend")
    nlp = build_nlp(["entity"], config, backend=backend)
    component = uniner_pipe(nlp)
    component.calibration = None  # fit on the scores after the stages, which it will map
    scores, correct, labels = stage_scores(nlp, paths, 0, limit, batch_size)
    calibrator = fit(scores, correct, labels=labels, min_per_label=min_per_label)
    sets = {"fitted": (scores, correct, labels)}
    if holdout and limit is not None:
        sets["holdout"] = stage_scores(nlp, paths, limit, limit + holdout, batch_size)
    report = {}
    for name, (s, c, l) in sets.items():
        table = reliability([calibrator(x, label) for x, label in zip(s, l)], c)
        report[name] = {"candidates": len(s), "ece": round(expected_calibration_error(table), 4),
                        "ece_uncalibrated": round(expected_calibration_error(reliability(s, c)), 4),
                        "reliability": table}
    calibrator.to_disk(output, fitted_on=[str(p) for p in paths], limit=limit, candidates=len(scores),
                       precision=round(sum(correct) / max(1, len(correct)), 4), **report)
    return {"output": str(output), "candidates": len(scores), "correct": sum(correct),
            "labels_fitted": sorted(calibrator.labels),
            **{k: {"ece": v["ece"], "ece_uncalibrated": v["ece_uncalibrated"], "candidates": v["candidates"]}
               for k, v in report.items()}}


def stage_scores(nlp, data: Sequence[Path], start: int, stop: Optional[int], batch_size: int = 32) -> Scored:
    """Each file's texts [start, stop) through `nlp`, its uniner pipe asked for the file's gold labels:
    candidate scores (after the stages and the pipe's calibration, if any), whether each is gold, and
    its label."""
    from ..pipeline.build import uniner_pipe

    component = uniner_pipe(nlp)
    scores: List[float] = []
    correct: List[bool] = []
    labels: List[str] = []
    for path in data:
        examples = load(path, limit=stop)[start:]
        component.initialize(labels=list(dict.fromkeys(l for eg in examples for l in eg.labels)))
        docs = nlp.pipe((eg.text for eg in examples), batch_size=batch_size)
        s, c, l = candidates_vs_gold(docs, examples)
        scores += s
        correct += c
        labels += l
    return scores, correct, labels
