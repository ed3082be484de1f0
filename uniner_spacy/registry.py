"""Registered, versioned functions: what users swap in the config."""
from spacy.util import registry

from .backends.hf import make_hf_backend
from .backends.openai import make_openai_backend
from .cache import make_cached_backend
from .calibration import make_calibration

registry.misc.register("uniner.HF.v1", func=make_hf_backend)
registry.misc.register("uniner.OpenAI.v1", func=make_openai_backend)
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


def make_stages(*stages):
    """`uniner.Stages.v1`: the component's `stages` list from config sections.

    confection does not resolve promises inside a JSON list, so in a config write
    `[components.uniner.stages] @misc = "uniner.Stages.v1"` and one
    `[components.uniner.stages.*.<name>]` section per stage (run in file order).
    """
    return list(stages)


registry.misc.register("uniner.Stages.v1", func=make_stages)
