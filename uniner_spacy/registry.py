"""The registry configs resolve against: spaCy's, so `@misc = "uniner.HF.v1"` works.

Each registered function is registered where it is defined. Without spaCy (a bare GPU
box that only trains or serves) the decorators leave functions as they are.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

try:
    from spacy.util import registry
except ImportError:  # pragma: no cover - exercised by the import-without-spaCy test

    class _Table:
        def __call__(self, name: str, func: Optional[Callable[..., Any]] = None) -> Any:
            return func if func is not None else (lambda f: f)

        register = __call__

    class _Registry:
        misc = _Table()

    registry = _Registry()  # type: ignore[assignment,misc]

__all__ = ["registry"]
