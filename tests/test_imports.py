"""`import uniner_spacy` and `uniner-spacy --help` stay light; spaCy still finds every registration.

spaCy's thinc imports torch whenever it is installed, so neither may import spaCy either. Each check
runs in a fresh interpreter: this test process has imported all of them already.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "spacy", "thinc", "sentence_transformers", "peft", "accelerate")


def run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


LOADED = f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"


def test_importing_the_package_imports_no_model_library():
    out = run(f"import json, sys\nimport uniner_spacy\nassert uniner_spacy.__version__\n{LOADED}")
    assert json.loads(out.splitlines()[-1]) == []


def test_help_imports_no_model_library():
    code = f"""import json, runpy, sys
sys.argv = ["uniner-spacy", "--help"]
try:
    runpy.run_module("uniner_spacy.cli", run_name="__main__")
except SystemExit as done:
    assert done.code in (0, None), done.code
{LOADED}"""
    out = run(code)
    assert "annotate" in out and "Usage" in out  # the help was printed
    assert json.loads(out.splitlines()[-1]) == []


def test_spacy_finds_the_factory_and_every_registered_function_by_entry_point():
    """A fresh process that imports spaCy, never uniner_spacy: configs still resolve every `uniner.*` name."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = sorted(project["entry-points"]["spacy_misc"])
    code = f"""import json, spacy
from spacy.util import registry
found = {{name: registry.misc.get(name).__module__ for name in {names!r}}}
nlp = spacy.blank("en")
pipe = nlp.add_pipe("uniner", config={{"labels": ["person"], "backend": {{"@misc": "uniner.Canned.v1"}}}})
found["uniner"] = type(pipe).__module__
print(json.dumps(found))"""
    found = json.loads(run(code).splitlines()[-1])
    assert found.pop("uniner") == "uniner_spacy.pipeline.component"
    expected = {name: value.partition(":")[0] for name, value in project["entry-points"]["spacy_misc"].items()}
    assert found == expected


def test_the_package_exports_the_component_on_first_use():
    import uniner_spacy
    from uniner_spacy.pipeline.component import UniNER, make_uniner

    assert uniner_spacy.UniNER is UniNER and uniner_spacy.make_uniner is make_uniner


def test_the_modules_registered_at_import_are_those_the_entry_points_name():
    import tomllib

    import uniner_spacy

    points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    named = {value.partition(":")[0] for group in ("spacy_factories", "spacy_misc") for value in points[group].values()}
    assert set(uniner_spacy.REGISTERING) == named
