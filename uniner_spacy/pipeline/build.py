"""Building a pipeline from the command line's options."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Union, cast

import spacy
from spacy.language import Language

from ..errors import ConfigError
from ..types import Labels
from .component import UniNER, validate_labels


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
    `labels` are data: checked first, and never written into a config's text.
    """
    if config is not None:
        checked = validate_labels(labels) if labels is not None else None
        path = Path(config)
        if path.is_dir():
            nlp = spacy.load(path)
        else:
            cfg = spacy.util.load_config(path)
            if checked is not None:
                # the names stand in, as a list of JSON strings, until the pipe exists; the labels with
                # their descriptions are then set as data (`initialize`). As keys of a config section,
                # `[x]` or `@misc` in a label would read as config syntax
                cfg["components"]["uniner"]["labels"] = list(checked)
            nlp = spacy.util.load_model_from_config(cfg, auto_fill=True)
        if checked is not None and "uniner" in nlp.pipe_names:
            uniner_pipe(nlp).initialize(labels=checked)
        return nlp
    if labels is None:
        raise ConfigError("Give labels (e.g. --labels person,organization) or a config that has them")
    nlp = spacy.blank(lang)
    settings: Dict[str, object] = {"labels": _plain(labels), **component}
    if backend:
        settings["backend"] = backend
    nlp.add_pipe("uniner", config=settings)
    return nlp


def uniner_pipe(nlp: Language, name: str = "uniner") -> UniNER:
    """The pipeline's `uniner` pipe, typed as what it is."""
    pipe = nlp.get_pipe(name)
    if not isinstance(pipe, UniNER):
        raise ConfigError(f"pipe {name!r} is a {type(pipe).__name__}, not a uniner pipe")
    return cast(UniNER, pipe)


def _plain(labels: Labels):
    return dict(labels) if isinstance(labels, Mapping) else list(labels)
