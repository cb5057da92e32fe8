"""Every example in a bnnzoo docstring runs as written (they render in the API docs).

Examples are the fenced ```python blocks inside `!!! example` admonitions. Each runs
in a fresh namespace in a temporary working directory, so an example must import what
it uses and build its own model and data (the bundled digits keep them fast).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import textwrap

import pytest

import bnnzoo

FENCE = re.compile(r"```python\n(.*?)```", re.S)


def _own_docs():
    """(name, docstring) of every bnnzoo module and of the objects defined in it."""
    for info in pkgutil.walk_packages(bnnzoo.__path__, "bnnzoo."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        yield info.name, module.__doc__
        for attr, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__ or attr.startswith("_"):
                continue
            yield f"{info.name}.{attr}", obj.__doc__
            if inspect.isclass(obj):
                for method, member in vars(obj).items():
                    func = getattr(member, "__func__", member)
                    if not method.startswith("_") or method == "__init__":
                        yield f"{info.name}.{attr}.{method}", getattr(func, "__doc__", None)


def examples() -> list[tuple[str, str]]:
    found, seen = [], set()
    for name, doc in _own_docs():
        for i, code in enumerate(FENCE.findall(inspect.cleandoc(doc or ""))):
            code = textwrap.dedent(code)
            if code not in seen:  # re-exported objects are listed once
                seen.add(code)
                found.append((f"{name}#{i + 1}", code))
    return found


EXAMPLES = examples()
# Examples that export with LCE (larq-compute-engine: the Python 3.11 and 3.12 stacks).
NEEDS_LCE = re.compile(r"""format=["']lce["']|export_model\([^)]*,\s*["']lce["']""")


def test_public_api_has_examples():
    names = {name.split("#")[0] for name, _ in EXAMPLES}
    assert len(EXAMPLES) >= 25
    for required in ("bnnzoo.quantizers.SteWarmup", "bnnzoo.quantizers.BNNPlusPlus",
                     "bnnzoo.optimizers.bop2ndorder.Bop2ndOrder", "bnnzoo.fsg.optimizer.FSG",
                     "bnnzoo.layers.HyperConv2D", "bnnzoo.export.lce.BinaryDenseAsConv2D"):
        assert required in names, required


@pytest.mark.parametrize("name,code", [
    pytest.param(name, code, marks=pytest.mark.lce) if NEEDS_LCE.search(code) else (name, code)
    for name, code in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_docstring_example_runs(name, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, name, "exec"), {"__name__": "__example__"})
