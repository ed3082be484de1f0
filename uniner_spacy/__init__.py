"""UniversalNER-style open named entity recognition for spaCy.

Importing the package registers the `uniner` factory and every `uniner.*` function with
spaCy (each where it is defined); spaCy also finds them through the entry points in
pyproject.toml. Without spaCy the model layers (backends, weights, training) still import.
"""
import importlib.util

if importlib.util.find_spec("spacy") is not None:
    from .backends import cache, canned, openai  # noqa: F401  uniner.Cached.v1, uniner.Canned.v1, uniner.OpenAI.v1
    from .backends.hf import backend  # noqa: F401  uniner.HF.v1
    from .pipeline import calibration  # noqa: F401  uniner.Calibration.v1
    from .pipeline.component import UniNER, make_uniner  # noqa: F401  the "uniner" factory
    from .stages import chooser, conflicts, paraphrases, precision, rules  # noqa: F401  the stages

__version__ = "0.1.0"
