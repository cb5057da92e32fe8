"""The documentation: every Python snippet runs, generated pages are complete.

`mkdocs build --strict` itself runs in `.ci/run` (`make docs`).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
import yaml

import bnnzoo

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def doc_files() -> list[Path]:
    files = sorted(DOCS.rglob("*.md"))
    readme = REPO / "README.md"
    return files + ([readme] if readme.is_file() else [])


def snippets() -> list[tuple[str, str]]:
    found = []
    for path in doc_files():
        for i, code in enumerate(FENCE.findall(path.read_text())):
            found.append((f"{path.relative_to(REPO)}#{i + 1}", code))
    return found


SNIPPETS = snippets()


def load_hooks():
    spec = importlib.util.spec_from_file_location("bnnzoo_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_have_snippets_on_the_main_pages():
    names = {name.split("#")[0] for name, _ in SNIPPETS}
    for page in ("docs/index.md", "docs/training.md", "docs/export.md", "docs/zoo.md"):
        assert page in names, f"{page} has no Python snippet"


def _needs_lce(code: str) -> bool:
    return '"lce"' in code or "'lce'" in code or "larq_compute_engine" in code


@pytest.mark.parametrize("name,code", [
    pytest.param(name, code, marks=pytest.mark.lce) if _needs_lce(code) else (name, code)
    for name, code in SNIPPETS], ids=[name for name, _ in SNIPPETS])
def test_snippet_runs(name, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    exec(compile(code, name, "exec"), {"__name__": "__snippet__"})


def test_every_quantizer_and_optimizer_is_documented():
    text = (DOCS / "training.md").read_text()
    hooks = load_hooks()
    expanded = hooks.expand(text, DOCS)
    for name in bnnzoo.quantizers.list_quantizers() + bnnzoo.optimizers.list_optimizers():
        assert f"`{name}`" in expanded, name


def test_zoo_page_lists_every_family_and_card():
    from bnnzoo import pretrained

    page = load_hooks().expand((DOCS / "zoo.md").read_text(), DOCS)
    assert "<!-- bnnzoo:" not in page
    for name in bnnzoo.models.list_models():
        assert f"| `{name}` |" in page, name
        for card in pretrained.list_cards(name):
            assert f"`{card.tag}`" in page


def test_nav_lists_existing_pages_only(tmp_path):
    hooks = load_hooks()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "quantizers.md").write_text("# q\n")
    (tmp_path / "tuning.md").write_text("# t\n")
    nav = hooks.extend_nav([{"Home": "index.md"}, {"Benchmarks": [{"Comparison": "benchmarks.md"}]}], tmp_path)
    assert nav == [
        {"Home": "index.md"},
        {"Tuning": "tuning.md"},
        {"Benchmarks": [{"Comparison": "benchmarks.md"}, {"Quantizers": "benchmarks/quantizers.md"}]},
    ]
    page = hooks.expand("<!-- bnnzoo:benchmark-pages -->", tmp_path)
    assert page == "- [Quantizers](benchmarks/quantizers.md)"


def _nav_pages(nav):
    for item in nav:
        for value in item.values():
            if isinstance(value, str):
                yield value
            else:
                yield from _nav_pages(value)


def test_mkdocs_config_pages_and_api_modules_exist():
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:", lambda loader, suffix, node: None)
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=Loader)
    nav = load_hooks().extend_nav(config["nav"], DOCS)
    pages = list(_nav_pages(nav))
    for page in pages:
        assert (DOCS / page).is_file(), page
    for path in sorted((DOCS / "api").glob("*.md")):
        module = path.read_text().split(":::")[1].strip()
        assert importlib.util.find_spec(module) is not None, module
        assert f"api/{path.name}" in pages
    # every public bnnzoo module has an API page
    for module in ("quantizers", "optimizers", "models", "data", "training", "pretrained",
                   "tuning", "export", "layers", "callbacks", "fsg", "zoo", "registry", "validation",
                   "distillation"):
        if importlib.util.find_spec(f"bnnzoo.{module}") is not None:
            assert (DOCS / "api" / f"{module}.md").is_file(), module
    assert os.path.exists(REPO / "docs" / "hooks.py")


def _documented_objects() -> dict[str, set[str]]:
    """API page -> the public names mkdocstrings shows for its `::: module` directives,
    read statically with griffe (the loader mkdocstrings itself uses)."""
    import griffe

    package = griffe.load("bnnzoo", search_paths=[str(REPO)], resolve_aliases=False)
    shown = {}
    for path in sorted((DOCS / "api").glob("*.md")):
        names = set()
        for directive in re.findall(r"^:::\s*(\S+)", path.read_text(), re.M):
            obj = package
            for part in directive.split(".")[1:]:
                obj = obj.members[part]
            exports = getattr(obj, "exports", None)
            public = set(exports) if exports is not None else {n for n in obj.members if not n.startswith("_")}
            names |= {f"{directive}.{n}" for n in public} | {directive}
        shown[path.name] = names
    return shown


def test_api_pages_show_every_public_object_headline_methods_first():
    """Bop2ndOrder, FSG, FlipRate, every quantizer class and every layer have an API entry,
    and the API navigation starts with the methods (quantizers, optimizers, FSG, layers)."""
    import inspect

    shown = set().union(*_documented_objects().values())
    short = {name.rsplit(".", 1)[1] for name in shown}
    wanted = {"Bop2ndOrder", "FSG", "FlipRate", "HyperConv2D", "HyperDense", "FSGModel",
              "Registry", "QuantizerAnnealing"}
    for name in bnnzoo.quantizers.list_quantizers():
        cls = bnnzoo.quantizers.quantizer_class(name)
        if inspect.isclass(cls) and cls.__module__.startswith("bnnzoo"):
            wanted.add(cls.__name__)
    wanted |= set(bnnzoo.layers.__all__)
    missing = sorted(wanted - short)
    assert missing == [], f"not on any API page: {missing}"

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:", lambda loader, suffix, node: None)
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=Loader)
    api = next(item["API"] for item in config["nav"] if isinstance(item, dict) and "API" in item)
    first = [list(entry.values())[0] for entry in api[:4]]
    assert first == ["api/quantizers.md", "api/optimizers.md", "api/fsg.md", "api/layers.md"]


# ------------------------------------------------------------ shell snippets
#
# Shell blocks show long runs (training for epochs, searches, benchmarks) that the suite
# cannot afford to execute. What can rot in them is the command line itself, so every
# `bnnzoo ...` line is parsed by the real CLI parser, `train` lines are turned into a
# validated TrainConfig, and every script or recipe a block names must exist. The cheap
# ones (`bnnzoo list`) are really run.

SHELL_FENCE = re.compile(r"^```(?:bash|sh)[^\n]*\n(.*?)^```", re.S | re.M)


def shell_commands() -> list[tuple[str, str]]:
    found = []
    for path in doc_files():
        for i, block in enumerate(SHELL_FENCE.findall(path.read_text())):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    found.append((f"{path.relative_to(REPO)}#sh{i + 1}", line))
    return found


SHELL_COMMANDS = shell_commands()


def test_docs_have_shell_commands():
    assert sum(line.startswith("bnnzoo ") for _, line in SHELL_COMMANDS) >= 10


@pytest.mark.parametrize("name,line", SHELL_COMMANDS, ids=[f"{n}:{l[:40]}" for n, l in SHELL_COMMANDS])
def test_shell_command_is_valid(name, line, capsys):
    import shlex

    from bnnzoo import cli

    words = shlex.split(line)
    if words[0] == "make":
        targets = re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), re.M)
        goals = [w for w in words[1:] if "=" not in w]  # `make test PYTHON=python3.12`
        assert set(goals) <= set(targets), f"{name}: unknown make target in {line!r}"
        return
    files = [w for w in words if w.endswith((".py", ".toml", ".json")) and "/" in w]
    for word in files:
        assert (REPO / word).is_file(), f"{name}: {word} does not exist"
    if "bnnzoo" not in words:
        assert files, f"{name}: neither a bnnzoo command nor a script: {line!r}"
        return
    argv = words[words.index("bnnzoo") + 1:]
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{name}: the CLI rejects {line!r}: {capsys.readouterr().err}")
    if args.command == "train":
        cli.stage_configs_from_args(args)  # names, values and recipe (every stage) are validated here
    elif args.command == "list":
        assert args.func(args) == 0
        assert "binarynet" in capsys.readouterr().out


# ------------------------------------------------------------ TOML recipes

TOML_FENCE = re.compile(r"^```toml[^\n]*\n(.*?)^```", re.S | re.M)
TOML_BLOCKS = [(f"{path.relative_to(REPO)}#toml{i + 1}", block)
               for path in doc_files() for i, block in enumerate(TOML_FENCE.findall(path.read_text()))]


@pytest.mark.parametrize("name,block", TOML_BLOCKS, ids=[name for name, _ in TOML_BLOCKS])
def test_toml_recipe_is_valid(name, block):
    """A recipe shown in the docs parses and makes a valid TrainConfig for every stage."""
    import tomllib

    from bnnzoo.training import stage_configs

    assert stage_configs(tomllib.loads(block)), name


def test_docs_example_recipes_are_valid():
    from bnnzoo.training import read_recipe, stage_configs

    recipes = sorted((DOCS / "examples").glob("*.toml"))
    assert recipes
    for path in recipes:
        assert stage_configs(read_recipe(path)), path
