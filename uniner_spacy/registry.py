"""Registered, versioned functions: what users swap in the config."""
from spacy.util import registry

from .backends.hf import HFBackend
from .backends.openai import OpenAIBackend
from .cache import make_cached_backend
from .calibration import make_calibration

registry.misc.register("uniner.HF.v1", func=HFBackend)
registry.misc.register("uniner.OpenAI.v1", func=OpenAIBackend)
registry.misc.register("uniner.Cached.v1", func=make_cached_backend)

# Hybrid stages (issue 6): cheap to import; their models load when a config builds them.
from .conflicts import make_conflicts, make_consolidate  # noqa: E402
from .precision import make_precision_check  # noqa: E402
from .rules import make_rules  # noqa: E402
from .types import make_paraphrases  # noqa: E402

registry.misc.register("uniner.Paraphrases.v1", func=make_paraphrases)
registry.misc.register("uniner.Conflicts.v1", func=make_conflicts)
registry.misc.register("uniner.Consolidate.v1", func=make_consolidate)
registry.misc.register("uniner.Rules.v1", func=make_rules)
registry.misc.register("uniner.PrecisionCheck.v1", func=make_precision_check)
registry.misc.register("uniner.Calibration.v1", func=make_calibration)


