"""Dependency ranges a user's environment can meet, and the CPU fast path only where it was written for.

`cpu_kernels.fast_path()` gates every kernel that reaches into transformers internals; off it the
model's own attention and `DynamicCache` run, and must give the same answers.
"""
import logging
import sys
from pathlib import Path

import pytest
from conftest import TINY_FACTS, fast_path_only

from uniner_spacy.backends.hf import backend as hf_backend
from uniner_spacy.backends.hf import cpu_kernels

ROOT = Path(__file__).resolve().parents[1]


def declared():
    """{name: SpecifierSet} of pyproject.toml's dependencies."""
    from packaging.requirements import Requirement

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name: Requirement(r).specifier for r in project["dependencies"]}


def test_dependencies_are_ranges_whose_lower_bounds_ci_installs():
    """No exact pins to replace a user's torch; every lower bound is the version `make test-lowest` tests."""
    from packaging.version import Version

    lowest = {}
    for line in (ROOT / "lowest-versions.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            lowest[name.strip()] = Version(version.strip())
    specs = declared()
    for name, spec in specs.items():
        assert not any(s.operator in ("==", "===", "~=") for s in spec), f"{name} is pinned: {spec}"
        lower = [Version(s.version) for s in spec if s.operator == ">="]
        if not str(spec):
            continue  # a data package with one release (the MiniLM)
        assert lower, f"{name} has no lower bound: {spec}"
        assert lowest.get(name) == lower[0], f"lowest-versions.txt tests {name}=={lowest.get(name)}, not {lower[0]}"
    assert set(lowest) <= set(specs), "lowest-versions.txt names a package pyproject.toml does not require"
    for name in ("torch", "transformers", "sentence-transformers"):
        assert any(s.operator == "<" for s in specs[name]), f"{name} needs an upper bound at its next major"
    assert "spacy-transformers" not in specs  # it caps transformers < 4.53.3: an extra, not a requirement


def test_fast_path_is_off_for_a_transformers_it_was_not_written_for(monkeypatch, caplog):
    import transformers

    cpu_kernels.fast_path.cache_clear()
    monkeypatch.setattr(transformers, "__version__", "4.54.0")
    try:
        with caplog.at_level(logging.WARNING, logger=cpu_kernels.__name__):
            assert cpu_kernels.fast_path() is False
            assert cpu_kernels.fast_path() is False
        warnings = [r.getMessage() for r in caplog.records if r.name == cpu_kernels.__name__]
        assert len(warnings) == 1 and "4.54.0 is installed" in warnings[0]  # logged once per process
        # the library's own cache, and no kernel switched on
        from transformers import DynamicCache

        assert type(cpu_kernels.growing_cache()) is DynamicCache
    finally:
        monkeypatch.undo()
        cpu_kernels.fast_path.cache_clear()


def off_fast_path(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "fast_path", lambda: False)
    monkeypatch.setattr(hf_backend, "fast_path", lambda: False)


@fast_path_only()
def test_fallback_answers_as_the_fast_path(tiny_model_dir, monkeypatch):
    """The tiny model's generations, token by token, with and without the CPU kernels."""
    from uniner_spacy.types import Query

    queries = [Query(p, t, t) for (p, t) in TINY_FACTS]
    kw = dict(max_new_tokens=24, dtype="float32", device="cpu")
    fast = hf_backend.HFBackend(str(tiny_model_dir), **kw)
    fast_out = fast(queries)
    assert fast._grouped  # the kernels were in use
    off_fast_path(monkeypatch)
    slow = hf_backend.HFBackend(str(tiny_model_dir), **kw)
    slow_out = slow(queries)
    assert not slow._grouped
    assert [g.text for g in slow_out] == [g.text for g in fast_out]
    assert '["Alice Smith"]' in [g.text.strip() for g in fast_out]  # the tiny model's memorised answer
    assert [lp for g in slow_out for _, lp in g.token_logprobs] == pytest.approx(
        [lp for g in fast_out for _, lp in g.token_logprobs], abs=1e-4)


SENTENCES = ["Barack Obama visited Paris and Berlin last week.", "Angela Merkel spoke in Munich.",
             "Apple hired Tim Cook from IBM in 1998."]


@fast_path_only()
def test_embedded_model_finds_the_same_entities_off_the_fast_path(monkeypatch):
    """The component with the embedded student: the same entities and scores with the model's own attention
    and cache. In float32: in bf16 (`dtype` auto on a CPU with native bf16) the two kernels round their sums
    apart, which moves scores (by up to 0.09 on the demo's sentences) but not these entities."""
    import spacy

    def entities():
        nlp = spacy.blank("en")
        pipe = nlp.add_pipe("uniner", config={
            "labels": ["person", "location", "organization"],
            "backend": {"@misc": "uniner.HF.v1", "model": "embedded", "dtype": "float32"}})
        found = [[(e.start_char, e.end_char, e.label_, round(e._.uniner_score, 3)) for e in doc.ents]
                 for doc in nlp.pipe(SENTENCES)]
        return found, pipe.backend._grouped

    fast, grouped = entities()
    assert grouped and any(fast), "the kernels were off, or the model found nothing: the comparison proves little"
    off_fast_path(monkeypatch)
    assert entities() == (fast, False)
