"""Review where people already work: export predictions to Label Studio, Prodigy or doccano with
their scores, and read the corrected exports back as gold, feedback corrections and block-list rules
(docs/review.md)."""
from __future__ import annotations

from .export import FORMATS, export_tasks, label_config, write_export
from .predictions import Predicted, ReviewDoc, read_predictions
from .reviewed import (
    ImportReport,
    Reviewed,
    detect_tool,
    import_review,
    read_reviewed,
    to_corrections,
    to_docs,
    to_examples,
    training_docs,
    write_reviewed,
)

__all__ = [
    "FORMATS", "ImportReport", "Predicted", "ReviewDoc", "Reviewed", "detect_tool", "export_tasks", "import_review",
    "label_config", "read_predictions", "read_reviewed", "to_corrections", "to_docs", "to_examples", "training_docs",
    "write_export", "write_reviewed",
]
