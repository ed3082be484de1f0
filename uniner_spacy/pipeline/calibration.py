"""Score calibration: raw mention probabilities → the chance a candidate is right.

A token probability of 0.9 from a 135M model does not mean 90% of such
mentions are correct. Fitted on a dev set (isotonic regression of
"candidate is a gold span" on its score after the stages), the mapping makes
`threshold` mean what it says. The component applies it after the stages,
which were tuned on the model's own scores. Stored as a small JSON of
breakpoints, applied by linear interpolation.
"""
from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import InputError, MissingFileError
from ..registry import registry
from ..trust import read_text
from ..types import label_key
from ..weights import EMBEDDED_MODELS, embedded_model

CALIBRATION_FILE = "calibration.json"  # its name in the embedded adapter and in saved pipelines
# the share of the mapped value that is the score itself: the isotonic fit has flat steps, and a
# mapping must keep every order of the scores it maps (they are compared: which overlapping span is
# the entity), while a billionth changes no probability and keeps it within [0, 1]
TIE_BREAK = 1e-9


@dataclass
class Calibrator:
    """Breakpoints of the mapping for every label, and per label where the fit had enough of it
    (`labels`: {label_key(label): (xs, ys)}, so `Person` finds `person`'s): how often a score is
    right differs a lot between `person` and `anatomical structure`, and a label not fitted gets the
    mapping of all of them."""

    xs: List[float]
    ys: List[float]
    labels: Dict[str, Tuple[List[float], List[float]]] = field(default_factory=dict)
    # a configured file that was not there: an error at first use, unless a saved pipeline's
    # from_disk supplies the data first (the folder moved, the original file did not)
    missing: Optional[str] = None
    # the embedded student (`weights.EMBEDDED_MODELS`) whose shipped fit this is; None for any other file
    student: Optional[str] = field(default=None, compare=False)

    def __call__(self, score: float, label: Optional[str] = None) -> float:
        if self.missing is not None:
            raise MissingFileError(f"Calibration file {self.missing} does not exist")
        xs, ys = self.labels.get(label_key(label), (self.xs, self.ys)) if label is not None else (self.xs, self.ys)
        if not xs:
            return score
        return (1 - TIE_BREAK) * _mapped(xs, ys, score) + TIE_BREAK * min(1.0, max(0.0, score))

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"xs": self.xs, "ys": self.ys}
        if self.labels:
            out["labels"] = {label: {"xs": xs, "ys": ys} for label, (xs, ys) in sorted(self.labels.items())}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "calibration") -> "Calibrator":
        def points(d: Mapping[str, Any], what: str) -> Tuple[List[float], List[float]]:
            if len(d["xs"]) != len(d["ys"]) or list(d["xs"]) != sorted(d["xs"]):
                raise InputError(f"{where} is not a calibration ({what}: xs must be sorted, one y per x)")
            return list(map(float, d["xs"])), list(map(float, d["ys"]))

        xs, ys = points(data, "all labels")
        labels = {label_key(label): points(d, label) for label, d in (data.get("labels") or {}).items()}
        return cls(xs, ys, labels)

    def to_disk(self, path: Union[str, Path], **meta) -> None:
        Path(path).write_text(json.dumps({**self.to_dict(), **meta}, indent=1))

    @classmethod
    def from_disk(cls, path: Union[str, Path]) -> "Calibrator":
        # a regular file, capped: a config may name any path (trust.py)
        return cls.from_dict(json.loads(read_text(path, "calibration")), where=str(path))


def _mapped(xs: Sequence[float], ys: Sequence[float], score: float) -> float:
    i = bisect_right(xs, score)
    if i == 0:
        return ys[0]
    if i == len(xs):
        return ys[-1]
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (score - x0) / (x1 - x0) if x1 > x0 else y1


def _isotonic(scores: Sequence[float], correct: Sequence[bool], bins: int) -> Tuple[List[float], List[float]]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, [float(c) for c in correct])
    xs = sorted(set(float(x) for x in iso.X_thresholds_))
    if len(xs) > bins:
        step = (len(xs) - 1) / (bins - 1)
        xs = [xs[round(i * step)] for i in range(bins)]
    return xs, [float(y) for y in iso.predict(xs)]


def fit(scores: Sequence[float], correct: Sequence[bool], bins: int = 20,
        labels: Optional[Sequence[str]] = None, min_per_label: int = 200) -> Calibrator:
    """Isotonic fit, reduced to at most `bins` breakpoints; with `labels` (one per candidate), also
    one fit per label that has `min_per_label` candidates, right and wrong among them."""
    if len(scores) < 10:
        raise InputError(f"Need at least 10 scored candidates to calibrate, got {len(scores)}")
    by_label: Dict[str, List[Tuple[float, bool]]] = {}
    for s, c, l in zip(scores, correct, labels or ()):
        by_label.setdefault(label_key(l), []).append((s, c))
    per_label = {label: _isotonic([s for s, _ in rows], [c for _, c in rows], bins)
                 for label, rows in sorted(by_label.items())
                 if len(rows) >= min_per_label and 0 < sum(c for _, c in rows) < len(rows)}
    return Calibrator(*_isotonic(scores, correct, bins), labels=per_label)


def reliability(scores: Sequence[float], correct: Sequence[bool], bins: int = 10) -> List[Dict[str, float]]:
    """Per equal-width score bin with candidates: its range, how many, the mean score and the share
    that is right (a reliability table: a calibrated score says how often it is right)."""
    rows = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(s, c) for s, c in zip(scores, correct) if low <= s < high or (b == bins - 1 and s == 1.0)]
        if inside:
            rows.append({"low": low, "high": high, "count": len(inside),
                         "score": round(sum(s for s, _ in inside) / len(inside), 4),
                         "precision": round(sum(c for _, c in inside) / len(inside), 4)})
    return rows


def expected_calibration_error(table: Sequence[Mapping[str, float]]) -> float:
    """Count-weighted mean gap between each bin's mean score and its precision."""
    total = sum(r["count"] for r in table)
    return sum(r["count"] * abs(r["score"] - r["precision"]) for r in table) / max(1, total)


def candidates_vs_gold(docs, examples, spans_key: str = "uniner") -> Tuple[List[float], List[bool], List[str]]:
    """Each candidate's score (run without a calibration: the score after the stages, which the
    calibration maps), whether it is a gold (start, end, label), and its label."""
    scores, correct, labels = [], [], []
    for doc, eg in zip(docs, examples):
        gold = {(e.start, e.end, e.label) for e in eg.entities}
        for span in doc.spans.get(spans_key, []):
            scores.append(float(span._.uniner_score))
            correct.append((span.start_char, span.end_char, span.label_) in gold)
            labels.append(span.label_)
    return scores, correct, labels


@registry.misc("uniner.Calibration.v1")
def make_calibration(path: Optional[str] = "embedded") -> Optional[Calibrator]:
    """`embedded` (`embedded-gemma`): the calibration shipped with that student's adapter (none → identity)."""
    if path is None:
        return None
    shipped = path in EMBEDDED_MODELS
    file = EMBEDDED_MODELS[path].adapter / CALIBRATION_FILE if shipped else Path(path)
    if not file.exists():
        return None if shipped else Calibrator([], [], missing=str(file))
    calibrator = Calibrator.from_disk(file)
    if shipped:
        calibrator.student = path
    return calibrator


def for_student(calibration: Optional[Calibrator], model: str) -> Optional[Calibrator]:
    """The calibration to use with the backend's `model`: a shipped fit of another embedded student
    (the default `path = "embedded"` beside `model = "embedded-gemma"`) gives way to that student's own."""
    found = embedded_model(model)
    if calibration is None or calibration.student is None or found is None:
        return calibration
    own = next(name for name, spec in EMBEDDED_MODELS.items() if spec is found[0])
    return calibration if own == calibration.student else make_calibration(own)
