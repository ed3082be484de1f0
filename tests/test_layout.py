"""The package layout reads like the data flow, and what is registered is what pyproject declares."""
import ast
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "uniner_spacy"

# lowest first; a module may import its own layer or lower ones, never a higher one
LAYERS = [
    ["errors", "types", "registry", "gguf_vocab"],
    ["io", "weights", "trust", "palette"],
    ["questions.*"],  # what we ask a model and how its answers are read: both backends and pipeline use it
    ["pipeline.chunking", "pipeline.align", "pipeline.resolve", "pipeline.calibration"],
    ["backends.*"],
    ["stages.*"],
    ["pipeline.component", "pipeline.build"],
    ["distill.*", "evaluation.*", "review.*"],
    ["serve", "distributed", "runs", "corpus", "playground", "distill.workflow"],
    ["cli.*"],
]


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def layer_of(name):
    for i, layer in enumerate(LAYERS):  # a module named outright, before the packages named by a pattern
        if name in layer:
            return i
    for i, layer in enumerate(LAYERS):
        for pattern in layer:
            if name == pattern or (pattern.endswith(".*") and (name + ".").startswith(pattern[:-1])):
                return i
    return None


def imports(name, path, private=False):
    """Every module of ours `path` imports, at the top or inside a function; with `private`, the
    (module, name) of each `_name` it imports from one."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    if name == "":
        here = []
    known = {n for n, _ in modules()}
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("uniner_spacy"):
                target = node.module[len("uniner_spacy."):] if node.module != "uniner_spacy" else ""
            else:
                continue
            for alias in node.names:  # `from . import cache` names a module
                sub = f"{target}.{alias.name}".strip(".")
                if private and alias.name.startswith("_") and sub not in known:
                    out.add((target, alias.name))
                elif not private:
                    out.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("uniner_spacy."):
                    out.add(alias.name[len("uniner_spacy."):])
    if private:
        return out
    return {m for m in out if m in known and m != name}


def test_every_module_has_a_layer():
    missing = [n for n, p in modules() if p.name != "__init__.py" and layer_of(n) is None]
    assert not missing, f"give these a layer in LAYERS: {missing}"


def test_no_module_imports_a_module_above_it():
    bad = []
    for name, path in modules():
        if name == "" or path.name == "__init__.py":
            continue  # the package's own __init__ imports everything that registers
        for target in imports(name, path):
            if layer_of(target) is not None and layer_of(target) > layer_of(name):
                bad.append(f"{name} -> {target}")
    assert not bad, bad


def package_of(name):
    """`backends` for `backends.hf.backend`; "" for a module at the top (`corpus`)."""
    return name.split(".")[0] if "." in name else ""


def test_backends_never_import_the_pipeline():
    """The pipeline calls the backends; prompts and answer reading, which both use, live in `questions`."""
    bad = [f"{name} -> {target}" for name, path in modules() if package_of(name) == "backends"
           for target in imports(name, path) if package_of(target) == "pipeline"]
    assert not bad, bad


def test_no_private_name_is_imported_from_another_package():
    """A `_name` is its package's own business: one another package needs is made public where it lives."""
    bad = [f"{name} imports {attr} from {target}" for name, path in modules()
           for target, attr in imports(name, path, private=True) if package_of(target) != package_of(name)]
    assert not bad, bad


def test_every_package_folder_ships():
    """Each folder of the package is in pyproject's `packages`, so the wheel holds it."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {"uniner_spacy" + "".join("." + p for p in init.parent.relative_to(PACKAGE).parts)
               for init in PACKAGE.rglob("__init__.py")}
    assert folders <= listed, sorted(folders - listed)


def test_no_import_cycles():
    graph = {name: imports(name, path) for name, path in modules() if name}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if nxt.startswith(node + "."):
                continue  # a package's __init__ re-exporting its own module is not a cycle
            if state.get(nxt) == "open":
                raise AssertionError(" -> ".join(stack + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])


def entry_points():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    return project["spacy_misc"], project["spacy_factories"]


def load(ref):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def test_entry_points_match_the_registry():
    from spacy.util import registry

    import uniner_spacy  # noqa: F401  registers everything

    misc, factories = entry_points()
    for name, ref in misc.items():
        assert registry.misc.get(name) is load(ref), name
    registered = {n for n in registry.misc.get_all() if n.startswith("uniner.")}
    assert registered == set(misc), "every uniner.* function needs its entry point, and no more"
    for name, ref in factories.items():
        factory = load(ref)  # first: `import uniner_spacy` leaves the component's module to first use
        assert registry.factories.get(name) is factory


def test_registration_happens_where_things_are_defined():
    """`@registry.misc("uniner.X")` sits on the definition; nothing registers another module's function."""
    misc, _ = entry_points()
    for name, ref in misc.items():
        module = ref.split(":")[0]
        path = REPO / (module.replace(".", "/") + ".py")
        assert f'@registry.misc("{name}")' in path.read_text(), f"{name} is not registered in {path}"


def test_factory_declares_what_it_assigns():
    from spacy.language import Language

    import uniner_spacy  # noqa: F401

    meta = Language.get_factory_meta("uniner")
    assert set(meta.assigns) == {"doc.ents", "doc.spans", "doc._.uniner_stats"}


def test_wheel_carries_the_rule_sets_and_types(tmp_path):
    """The top-level rules/ folder is package data: `path = "default"` works from a pip install."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in sorted((REPO / "rules").glob("*.yaml")):
        assert f"uniner_spacy/rulesets/{shipped.name}" in names
    assert "uniner_spacy/py.typed" in names
    assert "uniner_spacy/assets/student/adapter_model.safetensors" in names


@pytest.mark.parametrize("name", ["default", "biomedical", "social_media"])
def test_shipped_rule_sets_load_by_name(name):
    from uniner_spacy.stages.rules import make_rules, shipped_rule_sets

    assert name in shipped_rule_sets()
    assert make_rules(name).missing is None
