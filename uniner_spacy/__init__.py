"""UniversalNER-style open named entity recognition for spaCy."""
from . import registry  # noqa: F401  registers uniner.HF.v1, uniner.OpenAI.v1
from .component import UniNER, make_uniner  # noqa: F401  registers the "uniner" factory

__version__ = "0.1.0"
