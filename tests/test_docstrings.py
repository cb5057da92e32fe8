"""Every example in a bnnzoo docstring runs as written (they render in the API docs).

Examples are the fenced ```python blocks inside `!!! example` admonitions. Each runs
in a fresh namespace in a temporary working directory, so an example must import what
it uses and build its own model and data (the bundled digits keep them fast).

An example states what it shows with `assert` (CONTRIBUTING.md, Conventions), so the
claim is checked when it runs: a result written as a comment (`print(x)  # 0.97`,
`names()  # ['red']`) is refused (`unchecked_claims`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import pkgutil
import re
import textwrap
import tokenize

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


def _is_literal(text: str) -> bool:
    text = re.sub(r"^(->|=>|==)\s*", "", text.strip())
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return bool(text)


def unchecked_claims(code: str) -> list[str]:
    """The lines of an example that state a result in a comment instead of asserting it.

    A trailing comment is a claim when it follows a `print(...)` or a bare value (a
    name, attribute, subscript, comparison: what a REPL would display), or when the
    comment is itself a Python literal (`# 64`, `# [256]`, `# -> (None, 10)`). Other
    trailing comments (on an `assert`, an assignment, a call run for its effect) say why.
    """
    shown = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Expr):
            value = node.value
            printed = isinstance(value, ast.Call) and getattr(value.func, "id", None) == "print"
            if printed or not isinstance(value, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom, ast.Constant)):
                shown.update(range(node.lineno, node.end_lineno + 1))
    claims = []
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type != tokenize.COMMENT or not tok.line[:tok.start[1]].strip():
            continue  # a comment on its own line
        if tok.start[0] in shown or _is_literal(tok.string[1:]):
            claims.append(tok.line.strip())
    return claims


def test_unchecked_claims_finds_results_written_as_comments():
    assert unchecked_claims("print(f(1))  # 0.97\n") == ["print(f(1))  # 0.97"]
    assert unchecked_claims("x = g()\nx.shape  # (2, 10)\n") == ["x.shape  # (2, 10)"]
    assert unchecked_claims("check(5)  # 5\n(a,) = h()  # -> [256]\n") == ["check(5)  # 5", "(a,) = h()  # -> [256]"]
    assert unchecked_claims("print(\n    err)  # Unknown colour 'blue'\n") == ["err)  # Unknown colour 'blue'"]
    fine = ("# a comment line: [1, 2]\nx = f()  # the trained model\nassert x == 2  # chance is 0.1\n"
            "model.fit(x, verbose=0)  # two epochs\nprint(x)\nprint('# not a comment')\n")
    assert unchecked_claims(fine) == []


def test_examples_assert_what_they_state():
    """Every example checks its results with `assert`."""
    claims = {name: unchecked_claims(code) for name, code in EXAMPLES}
    assert {name: lines for name, lines in claims.items() if lines} == {}
