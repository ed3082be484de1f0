"""`python -m uniner_spacy.cli`: the `uniner-spacy` command where its script is not on PATH (project.yml)."""
from .app import app

app(prog_name="uniner-spacy")
