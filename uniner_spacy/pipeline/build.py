"""Building a pipeline from the command line's options."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import spacy
from spacy.language import Language

Labels = Union[Sequence[str], Dict[str, str]]


def build_nlp(
    labels: Optional[Labels] = None,
    config: Optional[Union[str, Path]] = None,
    backend: Optional[Dict[str, object]] = None,
    lang: str = "en",
    **component: object,
) -> Language:
    """A pipeline with a `uniner` pipe.

    `config` is a spaCy config file or a saved pipeline folder; without it a
    blank pipeline gets the component with the embedded default model.
    """
    if config is not None:
        path = Path(config)
        if path.is_dir():
            nlp = spacy.load(path)
        else:
            cfg = spacy.util.load_config(path)
            if labels is not None:
                cfg["components"]["uniner"]["labels"] = _plain(labels)
            nlp = spacy.util.load_model_from_config(cfg, auto_fill=True)
        if labels is not None and "uniner" in nlp.pipe_names:
            nlp.get_pipe("uniner").initialize(labels=labels)
        return nlp
    if labels is None:
        raise ValueError("Give labels (e.g. --labels person,organization) or a config that has them")
    nlp = spacy.blank(lang)
    cfg: Dict[str, object] = {"labels": _plain(labels), **component}
    if backend:
        cfg["backend"] = backend
    nlp.add_pipe("uniner", config=cfg)
    return nlp


def _plain(labels: Labels):
    return dict(labels) if isinstance(labels, dict) else list(labels)
