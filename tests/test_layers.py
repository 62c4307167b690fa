"""The package's layers, enforced, lowest first:
utils -> jobs -> frontend -> data -> models -> decode -> inference -> scoring -> export -> train -> api -> serve -> bin.

A module may import only from its own layer or lower ones (docs/architecture.md, the package
docstring). Every ``import`` counts, at module level and inside functions, so a lazy import
cannot hide an upward dependency. Module-level import cycles are refused too, and each layer
must import on its own in a fresh interpreter without pulling in a higher one.
"""

import ast
import collections
import json
import os
import subprocess
import sys
from typing import Dict, List, Set, Tuple

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(REPO, "funasr_lite")
PACKAGE = "funasr_lite"

# Lowest first (docs/architecture.md draws the house). decode is search and timestamps only;
# inference loads model dirs and runs the pipeline on top of it; scoring reads 1best_recog files
# (inference.writers); export loads a model dir to write one; train sits above them all: validation
# decodes and scores as decoding does, fine-tuning loads a model dir, and nothing below needs the trainer.
LAYERS = ("utils", "jobs", "frontend", "data", "models", "decode", "inference", "scoring", "export", "train", "api",
          "serve", "bin")
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def _module_files() -> Dict[str, str]:
    """``funasr_lite.x.y`` -> path, for every .py file of the package."""
    modules = {}
    for directory, subdirs, files in os.walk(PACKAGE_DIR):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            parts = os.path.relpath(path, REPO)[: -len(".py")].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def layer_of(module: str) -> str:
    """The layer of a package module: its subpackage; the root package and api.py are "api"."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "api":
        return "api"
    return parts[1]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].endswith("__init__.py")
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> List[Tuple[str, int]]:
    """``(imported package module, line)`` for every import of ``module``, at any depth.

    ``from a.b import c`` counts as importing ``a.b.c`` when that is a module, else ``a.b``.
    """
    with open(MODULES[module], encoding="utf-8") as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=MODULES[module])
    except SyntaxError as e:
        pytest.fail(f"{MODULES[module]}:{e.lineno}: cannot be parsed: {e.msg}")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                # "import funasr_lite.a.b" names a module; keep the longest existing prefix
                while name not in MODULES and "." in name:
                    name = name.rsplit(".", 1)[0]
                found.append((name, node.lineno))
    return list(dict.fromkeys(found))  # "from m import a, b" is one import of m


def test_every_module_is_in_a_documented_layer():
    unknown = sorted(m for m in MODULES if layer_of(m) not in RANK)
    assert not unknown, f"modules outside the layers {LAYERS}: {unknown} (add the layer to LAYERS, the package docstring and docs/architecture.md)"


def test_no_module_imports_a_higher_layer():
    violations = []
    for module in MODULES:
        for imported, line in imports_of(module):
            if RANK[layer_of(imported)] > RANK[layer_of(module)]:
                violations.append(f"{os.path.relpath(MODULES[module], REPO)}:{line}: {module} ({layer_of(module)}) "
                                  f"imports {imported} ({layer_of(imported)})")
    assert not violations, "upward imports:\n" + "\n".join(violations)


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one node, or a node importing itself (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules():
    # every import counts, lazy ones included: a function-level import back into a module that
    # imports you is still a cycle in the design (decode.scoring <-> decode.timestamps was one)
    graph = {module: set() for module in MODULES}
    for module in MODULES:
        for imported, _ in imports_of(module):
            # a package's __init__ importing its own submodules is how packages are built, not a cycle
            if imported != module and not imported.startswith(module + "."):
                graph[module].add(imported)
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_cycles_between_subpackages():
    edges = collections.defaultdict(set)
    for module in MODULES:
        for imported, _ in imports_of(module):
            if layer_of(imported) != layer_of(module):
                edges[layer_of(module)].add(layer_of(imported))
    assert not _cycles(edges)


def _layer_modules(layer: str) -> List[str]:
    return sorted(m for m in MODULES if layer_of(m) == layer and m != PACKAGE)


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_alone_without_higher_layers(layer):
    """``import funasr_lite.<layer>`` and every module of it, in a fresh interpreter."""
    modules = _layer_modules(layer)
    assert modules, layer
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith('{PACKAGE}.'))))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, f"importing the {layer} layer alone failed:\n{done.stderr[-3000:]}"
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    higher = [m for m in loaded if RANK.get(layer_of(m), -1) > RANK[layer]]
    assert not higher, f"importing the {layer} layer loaded higher layers: {higher}"


def test_one_definition_of_each_error_class():
    """ConfigError, CheckpointError, DataDirError, ... are each defined once (one home)."""
    where = collections.defaultdict(list)
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception")):
                where[node.name].append(module)
    duplicates = {name: modules for name, modules in where.items() if len(modules) > 1}
    assert not duplicates, f"error classes defined more than once: {duplicates}"
    assert "ConfigError" in where and "CheckpointError" in where


def test_one_checkpoint_reader_and_one_alignment():
    """``torch.load`` is called in one module only (models/load.py); no module other than
    scoring/cer.py computes an edit distance with a library (jiwer, rapidfuzz, editdistance)."""
    torch_load, edit_distance_libraries = [], []
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                torch_load.append(module)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n.split(".")[0] in ("jiwer", "rapidfuzz", "editdistance", "Levenshtein", "kaldialign")
                       for n in names):
                    edit_distance_libraries.append(module)
    assert sorted(set(torch_load)) == ["funasr_lite.models.load"]
    assert edit_distance_libraries == []


def test_one_class_of_each_public_name():
    """Two public classes of one name (two ``Paraformer``, two ``SplitReport``) make every reader ask
    which one is meant: each public class name is defined once in the package."""
    where = collections.defaultdict(list)
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(module)
    clashes = {name: modules for name, modules in where.items() if len(modules) > 1}
    assert not clashes, f"public class names defined more than once: {clashes}"


def test_tools_holds_set_up_and_run_scripts_only():
    """Kaldi's tools/ installs third-party software and holds no library: here tools/ has the set-up
    and run scripts only. Benchmarks live in bench/, drills beside the tests, recipe helpers in egs/*/local/."""
    tools = os.path.join(REPO, "tools")
    found = []
    for directory, subdirs, files in os.walk(tools):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        found += [os.path.relpath(os.path.join(directory, name), REPO) for name in files]
    assert found, "tools/ is missing"
    not_scripts = [path for path in found if not path.endswith(".sh")]
    assert not not_scripts, f"tools/ holds only shell set-up/run scripts; move these: {not_scripts}"


def test_the_package_never_imports_the_funasr_oracle():
    """``funasr`` (and its ONNX client) is the reference the tests and benchmarks compare with; the
    package itself must run without it (docs/architecture.md)."""
    found = []
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            found += [f"{module}:{node.lineno}: {name}" for name in names
                      if name.split(".")[0] in ("funasr", "funasr_onnx")]
    assert not found, "the package imports the funasr oracle:\n" + "\n".join(found)
