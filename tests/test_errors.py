"""Every error a user sees is a `UninerError` that says what is wrong: each registered function of
ours, and the `uniner` factory, given a bad setting."""
import pytest
import spacy
from conftest import canned
from spacy.util import registry

import uniner_spacy  # noqa: F401  registers everything
from uniner_spacy.errors import ConfigError, UninerError

# a bad setting of each registered function, and what its message must name; first use included,
# for the parts that read their files lazily (a saved pipeline may supply the data first)
BAD = {
    "uniner.HF.v1": ({"dtype": "float64"}, "dtype must be one of"),
    "uniner.OpenAI.v1": ({"model": "m", "endpoint": "embeddings"}, "endpoint must be 'completions' or 'chat'"),
    "uniner.Cached.v1": ({"backend": None, "path": "{tmp}"}, "{tmp}"),
    "uniner.Canned.v1": ({"score": 0.5}, "score is a log-probability"),
    "uniner.Calibration.v1": ({"path": "{tmp}/none.json"}, "does not exist"),
    "uniner.Paraphrases.v1": ({"top_k": -1}, "top_k must be ≥ 0"),
    "uniner.Conflicts.v1": ({"weight": 2.0}, "must be in [0, 1]"),
    "uniner.Consolidate.v1": ({"bonus": -1.0}, "bonus is added to a score per agreeing question"),
    "uniner.Rules.v1": ({"path": "{tmp}/none.yaml"}, "No rules file"),
    "uniner.PrecisionCheck.v1": ({"mode": "sometimes"}, "mode must be one of"),
    "uniner.Chooser.v1": ({"weights": "{tmp}/none.json"}, "none.json"),
}


def ours():
    return sorted(name for name in registry.misc.get_all() if name.startswith("uniner."))


def test_every_registered_function_has_a_bad_setting_here():
    assert ours() == sorted(BAD), "give each registered uniner.* function a bad setting in BAD"


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_setting_is_a_uniner_error_that_names_it(name, tmp_path):
    settings, says = BAD[name]
    settings = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in settings.items()}
    says = says.replace("{tmp}", str(tmp_path))
    with pytest.raises(UninerError) as caught:
        made = registry.misc.get(name)(**settings)
        if name == "uniner.Calibration.v1":  # read lazily: the first use fails
            made(0.5)
        elif name in ("uniner.Rules.v1", "uniner.Chooser.v1"):
            made(spacy.blank("en")("Alice met Bob."), [])
    assert says in str(caught.value)


@pytest.mark.parametrize("config, says", [
    ({"labels": []}, "label"),
    ({"labels": ["person"], "overlap_policy": "random"}, "overlap_policy must be one of"),
    ({"labels": ["person"], "max_passage_tokens": 0}, "overlap_tokens must be ≥ 0 and smaller than max_passage"),
    ({"labels": ["person"], "on_error": "ignore"}, "on_error"),
])
def test_the_factory_refuses_a_bad_setting_with_a_config_error(config, says):
    nlp = spacy.blank("en")
    with pytest.raises(ConfigError) as caught:
        nlp.add_pipe("uniner", config={**config, "backend": canned()})
        nlp("Alice Smith works for Acme Corp in Berlin.")
    assert says in str(caught.value)
