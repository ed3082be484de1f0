"""Registered, versioned functions: what users swap in the config."""
from spacy.util import registry

from .backends.hf import make_hf_backend
from .backends.openai import make_openai_backend
from .cache import make_cached_backend

registry.misc.register("uniner.HF.v1", func=make_hf_backend)
registry.misc.register("uniner.OpenAI.v1", func=make_openai_backend)
registry.misc.register("uniner.Cached.v1", func=make_cached_backend)
