"""The `uniner-spacy` command."""
from .app import app

__all__ = ["app"]
