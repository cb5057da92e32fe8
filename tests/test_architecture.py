"""The library's import graph: one direction, no circles, no hidden imports.

The graph is read from the source (`ast`), so it covers imports inside functions too.
An edge `a -> b` is an explicit import of module `b` in module `a`; `from p import x`
is an edge to `p.x` when `x` is a module, else to `p`. Importing a submodule also runs
its parent package's `__init__`, as in any Python package; that implied edge is not
counted (it would make every package that re-exports its submodules a "circle").
"""

from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "bnnzoo"

# Layers of the library, lowest first. A module may import modules of its own layer
# or of lower layers only ("dependencies point one way").
LAYERS = [
    {"bnnzoo._atomic", "bnnzoo._runlock", "bnnzoo.registry", "bnnzoo.validation", "bnnzoo.datasets_cache",
     "bnnzoo.cli_support", "bnnzoo.model_files"},
    {"bnnzoo.quantizers", "bnnzoo.pretrained", "bnnzoo.data"},
    {"bnnzoo.layers", "bnnzoo.callbacks", "bnnzoo.optimizers", "bnnzoo.fsg", "bnnzoo.distillation"},
    {"bnnzoo.models"},
    {"bnnzoo.training"},
    {"bnnzoo.export", "bnnzoo.zoo", "bnnzoo.tuning"},
    {"bnnzoo.cli", "bnnzoo.__main__", "bnnzoo.zoo_cli"},
]
# What the model-building layers must never reach, even through other modules.
TRAINING_SIDE = {"bnnzoo.training", "bnnzoo.zoo", "bnnzoo.tuning", "bnnzoo.cli", "bnnzoo.export", "bnnzoo.zoo_cli"}
BUILDING_SIDE = ("bnnzoo.quantizers", "bnnzoo.layers", "bnnzoo.optimizers", "bnnzoo.models",
                 "bnnzoo.fsg", "bnnzoo.callbacks", "bnnzoo.pretrained")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _resolve(current: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current if _is_package(current) else current.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def imports_of(name: str) -> set[str]:
    """The bnnzoo modules `name` imports anywhere in its code."""
    tree = ast.parse(MODULES[name].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t.split(".")[0] == "bnnzoo" and t in MODULES)
    found.discard(name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def _layer(name: str) -> int | None:
    for i, members in enumerate(LAYERS):
        if any(name == m or name.startswith(m + ".") for m in members):
            return i
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    """Sanity: the parser sees known edges (a broken parser would pass every check)."""
    assert "bnnzoo.registry" in GRAPH["bnnzoo.quantizers"]
    assert "bnnzoo.optimizers.builders" in GRAPH["bnnzoo.optimizers.bop2ndorder"]
    assert "bnnzoo.callbacks" in GRAPH["bnnzoo.training.parts"]
    assert _folder("bnnzoo.fsg.model") == "bnnzoo.fsg" and _folder("bnnzoo.cli") == "bnnzoo.cli"
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_inside_the_package():
    # bnnzoo/__init__ imports the library to register its custom objects; a module
    # importing the root package back would be a circle through it.
    assert _cycles(GRAPH) == []
    importers_of_root = sorted(k for k, v in GRAPH.items() if "bnnzoo" in v and k != "bnnzoo")
    assert importers_of_root == [], f"modules importing the root package: {importers_of_root}"


def test_every_module_has_a_layer():
    unplaced = sorted(n for n in MODULES if n != "bnnzoo" and _layer(n) is None)
    assert unplaced == [], f"add these modules to LAYERS: {unplaced}"


def test_dependencies_point_one_way():
    upward = sorted(
        f"{a} -> {b}" for a, targets in GRAPH.items() if a != "bnnzoo"
        for b in targets if (_layer(b) or 0) > (_layer(a) or 0)
    )
    assert upward == [], "imports of a higher layer:\n" + "\n".join(upward)


def test_model_building_code_never_reaches_training():
    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in GRAPH[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    bad = {}
    for name in MODULES:
        if name.startswith(BUILDING_SIDE):
            hit = sorted(m for m in reach(name) if m.startswith(tuple(TRAINING_SIDE)))
            if hit:
                bad[name] = hit
    assert bad == {}


def _top_level_imports_first(tree: ast.Module) -> list[int]:
    """Line numbers of module-level imports that come after other statements."""
    late, seen_other = [], False
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if seen_other:
                late.append(node.lineno)
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # docstring
            seen_other = True
    return late


# Modules that must run code before their imports: selecting Keras 2 before TensorFlow
# is imported, and quieting TensorFlow's log before the CLI imports it.
RUN_BEFORE_IMPORT = {"bnnzoo", "bnnzoo.__main__"}


def test_no_bottom_of_file_imports():
    late = {n: _top_level_imports_first(ast.parse(p.read_text())) for n, p in MODULES.items()
            if n not in RUN_BEFORE_IMPORT}
    assert {n: lines for n, lines in late.items() if lines} == {}


def test_no_import_error_guards_around_package_modules():
    guarded = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Try):
                continue
            catches = {getattr(h.type, "id", None) for h in node.handlers}
            if "ImportError" in catches or "ModuleNotFoundError" in catches:
                inner = {t for stmt in node.body for t in imports_of_stmt(name, stmt)}
                if any(t.startswith("bnnzoo") for t in inner):
                    guarded.append(f"{name}:{node.lineno}")
    assert guarded == []


def imports_of_stmt(name: str, stmt: ast.stmt) -> list[str]:
    out = []
    for node in ast.walk(stmt):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append(_resolve(name, node))
    return out


def test_optimizers_declare_their_needs_on_their_spec():
    """`train` finds FSG's wrapping and Bop's callbacks on the registered `OptimizerSpec`,
    not on the builder function and not by import side effects."""
    from bnnzoo.optimizers import optimizer_spec

    assert optimizer_spec("fsg").wrap_model.__module__ == "bnnzoo.fsg.model"
    assert optimizer_spec("adam").wrap_model is None and optimizer_spec("adam").training_callbacks is None
    assert optimizer_spec("bop2ndorder").training_callbacks is optimizer_spec("bop").training_callbacks
    assert {f.name for f in optimizer_spec("bop2ndorder").cli_flags} == {
        "threshold", "gamma", "sigma", "epsilon", "bias_correction"}


SPEC_FIELDS = {"search_space", "training_callbacks", "wrap_model", "cli_flags"}


def _builder_attribute_uses(tree: ast.AST) -> list[int]:
    """Lines that read a spec field off an object by name (`getattr(x, "wrap_model")`)
    or set one on a function (`builder.wrap_model = ...`): the former builder protocol."""
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr")
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in SPEC_FIELDS):
            lines.append(node.lineno)
        elif isinstance(node, ast.Assign):
            lines += [t.lineno for t in node.targets if isinstance(t, ast.Attribute) and t.attr in SPEC_FIELDS]
    return lines


def test_no_getattr_on_optimizer_builders():
    found = {n: lines for n, p in MODULES.items() if (lines := _builder_attribute_uses(ast.parse(p.read_text())))}
    # One exception: tuning.spaces asks a quantizer class for its `search_space`
    # classmethod (a method of the class, not a builder attribute).
    assert set(found) <= {"bnnzoo.tuning.spaces"} and len(found.get("bnnzoo.tuning.spaces", [])) <= 1, found
    assert sorted(_builder_attribute_uses(ast.parse('getattr(b, "wrap_model", None)\nb.cli_flags = ()'))) == [1, 2]


def _folder(name: str) -> str:
    """The top-level folder (subpackage) of module `name`, or `name` itself for a
    module directly in `bnnzoo/`."""
    parts = name.split(".")
    top = ".".join(parts[:2])
    return top if _is_package(top) else name


def folder_graph() -> dict[str, set[str]]:
    """Imports between the folders and top-level modules of `bnnzoo/` (the root
    package, which imports everything to register custom objects, left out)."""
    graph: dict[str, set[str]] = {}
    for a, targets in GRAPH.items():
        if a == "bnnzoo":
            continue
        graph.setdefault(_folder(a), set()).update(_folder(b) for b in targets if b != "bnnzoo")
    for node, targets in graph.items():
        targets.discard(node)
    return graph


def test_no_import_circle_between_folders():
    """A module-level acyclic graph can still join two folders in a loop
    (as `optimizers/__init__` -> `fsg` and `fsg/builders` -> `optimizers/builders` did)."""
    graph = folder_graph()
    assert "bnnzoo.optimizers" in graph["bnnzoo.training"] and "bnnzoo.fsg" in graph["bnnzoo.optimizers"]
    assert _cycles(graph) == []
    assert "bnnzoo.optimizers" not in graph["bnnzoo.fsg"]


# One order by default (~20 s on the CI machine); two more with -m slow.
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_every_module_imports_in_a_fresh_interpreter_in_any_order(seed):
    order = [n for n in MODULES if n not in ("bnnzoo.__main__",)]
    random.Random(seed).shuffle(order)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code, *order], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
