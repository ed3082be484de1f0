"""UniversalNER-style open named entity recognition for spaCy.

spaCy finds the `uniner` factory and every `uniner.*` function through the entry points in
pyproject.toml, importing each module where it is defined when a pipeline or config first names
it. Importing this package alone imports neither spaCy nor torch (spaCy's thinc imports torch),
so `uniner-spacy --help` starts quickly; where spaCy is already imported, the registrations are
made at once as well.
"""
import importlib
import importlib.util
import sys
from typing import Any

__version__ = "0.1.0"
__all__ = ["UniNER", "make_uniner", "__version__"]

# the modules that register something with spaCy, each where it is defined
REGISTERING = (
    "uniner_spacy.backends.cache", "uniner_spacy.backends.canned", "uniner_spacy.backends.openai",
    "uniner_spacy.backends.hf.backend", "uniner_spacy.pipeline.calibration", "uniner_spacy.pipeline.component",
    "uniner_spacy.stages.chooser", "uniner_spacy.stages.conflicts", "uniner_spacy.stages.paraphrases",
    "uniner_spacy.stages.precision", "uniner_spacy.stages.rules",
)


def __getattr__(name: str) -> Any:
    """`uniner_spacy.UniNER` and `uniner_spacy.make_uniner`, imported (with spaCy) on first use; absent
    without spaCy (a bare GPU box that only trains or serves)."""
    if name in ("UniNER", "make_uniner") and importlib.util.find_spec("spacy") is not None:
        return getattr(importlib.import_module("uniner_spacy.pipeline.component"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if sys.modules.get("spacy") is not None:  # None: importing it is blocked
    for _module in REGISTERING:
        importlib.import_module(_module)
