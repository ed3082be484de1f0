"""Distillation: the teacher's silver, cleaned and taught to a spaCy `ner` student.

`distill_pipeline` (workflow.py, which imports spaCy) runs the whole of it and is loaded on first use;
`SilverFilters` chooses what of the silver is taught.
"""
from __future__ import annotations

from typing import Any

__all__ = ["DistillResult", "SilverFilters", "distill_pipeline"]


def __getattr__(name: str) -> Any:
    if name in ("DistillResult", "distill_pipeline"):
        from . import workflow

        return getattr(workflow, name)
    if name == "SilverFilters":
        from .silver import SilverFilters

        return SilverFilters
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
