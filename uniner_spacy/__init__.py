"""UniversalNER-style open named entity recognition for spaCy."""
import importlib.util

if importlib.util.find_spec("spacy") is not None:
    from . import registry  # noqa: F401  registers uniner.HF.v1, uniner.OpenAI.v1
    from .component import UniNER, make_uniner  # noqa: F401  registers the "uniner" factory
# else: the model layers (backends, training) still import, e.g. on a bare GPU box

__version__ = "0.1.0"
