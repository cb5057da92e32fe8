"""Pretrained artifacts, model cards, sha256-checked loading and fetching, publishing."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import shutil
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bnnzoo import pretrained, training, zoo
from bnnzoo.cli import format_card_line
from bnnzoo.models import create_model, list_models
from bnnzoo.pretrained import Card, WeightsIntegrityError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = [(card.name, card.tag) for name in list_models() for card in pretrained.list_cards(name)
           if card.shipped]
REQUIRED_CARD_FIELDS = (
    "name", "tag", "dataset", "input_shape", "num_classes", "test_accuracy", "params", "binary_params",
    "weight_memory_bytes", "float32_memory_bytes", "recipe", "sha256", "weights_file", "data_license",
    "model_kwargs", "input_quantizer", "kernel_quantizer",
)


def test_required_artifacts_are_shipped():
    for name in ("binarynet_mlp", "binarynet"):
        for tag in ("digits", "fashion_mnist"):
            assert (name, tag) in SHIPPED


@pytest.mark.parametrize("name,tag", SHIPPED)
def test_card_is_complete_and_matches_its_files(name, tag):
    folder = pretrained.artifacts_dir() / name / tag
    raw = json.loads((folder / "card.json").read_text())
    for key in REQUIRED_CARD_FIELDS:
        assert raw.get(key) is not None, key
    card = pretrained.get_card(name, tag)
    assert pretrained.sha256_file(folder / card.weights_file) == card.sha256
    assert card.data_license
    # The recipe regenerates this artifact.
    recipe = tomllib.loads((REPO / card.recipe).read_text())
    assert recipe["model"] == name and recipe["artifact"]["tag"] == tag
    assert recipe["dataset"] == card.dataset and recipe.get("model_kwargs", {}) == card.model_kwargs
    # Binary-weight memory is at most 1/20 of the float32 equivalent.
    assert card.weight_memory_bytes <= card.float32_memory_bytes / 20
    assert card.binary_params > 0.9 * card.params


@pytest.mark.parametrize("name,tag", SHIPPED)
def test_evaluate_reproduces_card_accuracy(name, tag):
    card = pretrained.get_card(name, tag)
    result = zoo.evaluate_pretrained(name, tag)
    assert set(result) >= {"dataset", "test_accuracy", "test_loss", "test_size"}
    assert result["test_size"] == card.test_size
    assert abs(result["test_accuracy"] - card.test_accuracy) <= 0.003


def test_best_shipped_models_clear_the_bars():
    best = {}
    for name, tag in SHIPPED:
        card = pretrained.get_card(name, tag)
        best[card.dataset] = max(best.get(card.dataset, 0.0), card.test_accuracy)
    assert best["fashion_mnist"] >= 0.88
    assert best["digits"] >= 0.97


def test_list_line_and_zoo_table_show_accuracy_and_size():
    card = pretrained.get_card("binarynet", "fashion_mnist")
    line = format_card_line(card)
    assert line.split()[0] == "fashion_mnist" and f"{100 * card.test_accuracy:.2f} %" in line
    assert re.search(r"\(1/\d+ of float32", line)
    table = zoo.zoo_table_markdown()
    assert table.count("\n| `") == sum(max(1, len(pretrained.list_pretrained(n))) for n in list_models())
    assert "`recipes/binarynet-fashion_mnist.toml`" in table


def test_unknown_tag_lists_valid_ones():
    with pytest.raises(ValueError, match="fashion_mnist"):
        create_model("binarynet", weights="cifar1000")


@pytest.fixture
def artifact_copy(tmp_path, monkeypatch):
    """A private copy of the binarynet_mlp/digits artifact, used as the artifacts dir."""
    source = pretrained.artifacts_dir() / "binarynet_mlp" / "digits"
    shutil.copytree(source, tmp_path / "binarynet_mlp" / "digits")
    monkeypatch.setenv(pretrained.ARTIFACTS_ENV, str(tmp_path))
    return tmp_path / "binarynet_mlp" / "digits"


def test_corrupted_weights_are_refused(artifact_copy):
    model = create_model("binarynet_mlp", weights="digits")  # the intact copy loads
    weights = artifact_copy / "weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        create_model("binarynet_mlp", weights="digits")
    with pytest.raises(WeightsIntegrityError, match="does not match the card"):
        pretrained.load_pretrained_weights(model, "binarynet_mlp", "digits")


def test_create_model_rebuilds_the_card_architecture():
    card = pretrained.get_card("binarynet", "fashion_mnist")
    model = create_model("binarynet", weights="fashion_mnist")
    assert model.input_shape[1:] == card.input_shape
    assert model.output_shape == (None, card.num_classes)
    assert model.count_params() == card.params
    with pytest.raises(ValueError, match="inputs of shape"):
        create_model("binarynet_mlp", weights="digits", input_shape=(28, 28, 1))



# --------------------------------------------------------------------------- the package's modules

# What `bnnzoo.pretrained` offered as one module (its `__all__` and the constants other
# modules use); the package keeps every one importable from `bnnzoo.pretrained`, except
# its CLI formatting: `format_card_line` is `bnnzoo.cli`'s, `format_bytes` `bnnzoo.cli_support`'s.
FORMER_MODULE_NAMES = (
    "ARTIFACTS_ENV", "CACHE_ENV", "CARD_FILE", "DATA_LICENSES", "DEPRECATED_CACHE_ENV", "FAMILY_DEFAULT",
    "LARQ_ZOO_IMAGENET", "LARQ_ZOO_RELEASES", "LARQ_ZOO_RELEASES_ENV", "MAX_DOWNLOAD_BYTES", "RECIPE_RECORD",
    "WEIGHTS_FILE", "Card", "WeightsIntegrityError", "artifacts_dir", "cache_dir", "check_download_url",
    "check_safe_name", "fetch", "get_card", "inside_folder", "list_cards",
    "list_pretrained", "load_pretrained_weights", "recipe_artifact", "recipe_record", "recipe_reference",
    "register_remote_card", "sha256_file", "weights_path",
)
# The package's modules, lowest first: each imports bnnzoo modules listed before it only.
PRETRAINED_MODULES = ("safety", "evidence", "cards", "lookup", "fetching")


def test_former_names_import_from_the_package_and_live_in_one_module():
    import importlib

    modules = {m: importlib.import_module(f"bnnzoo.pretrained.{m}") for m in PRETRAINED_MODULES}
    for name in FORMER_MODULE_NAMES:
        assert name in pretrained.__all__, name
        homes = [m for m, module in modules.items() if name in getattr(module, "__all__", ())]
        assert len(homes) == 1, (name, homes)
        assert getattr(pretrained, name) is getattr(modules[homes[0]], name), name
    exported = {n for module in modules.values() for n in module.__all__}
    assert set(pretrained.__all__) == exported  # the package re-exports exactly its modules' names


def test_pretrained_modules_import_downward_only():
    import ast

    folder = REPO / "bnnzoo" / "pretrained"
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted(("__init__",) + PRETRAINED_MODULES)
    for i, module in enumerate(PRETRAINED_MODULES):
        tree = ast.parse((folder / f"{module}.py").read_text())
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bnnzoo")}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for a in node.names if a.name.startswith("bnnzoo")}
        allowed = {f"bnnzoo.pretrained.{m}" for m in PRETRAINED_MODULES[:i]} | {"bnnzoo.datasets_cache"}
        assert imported <= allowed, (module, sorted(imported - allowed))
    assert "bnnzoo.pretrained.lookup" in {
        node.module for node in ast.walk(ast.parse((folder / "fetching.py").read_text()))
        if isinstance(node, ast.ImportFrom)}  # sanity: the walk sees imports


def test_every_package_and_the_larq_zoo_table_ship_in_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "bnnzoo").rglob("__init__.py")
                if "__pycache__" not in p.parts}
    assert "bnnzoo.pretrained" in packages
    assert packages <= set(config["packages"]), sorted(packages - set(config["packages"]))
    for package, patterns in config["package-data"].items():
        if package != "bnnzoo._artifacts":
            folder = REPO.joinpath(*package.split("."))
            assert all(list(folder.glob(pattern)) for pattern in patterns), (package, patterns)
    assert "larq_zoo_imagenet.json" in config["package-data"]["bnnzoo.pretrained"]

# --------------------------------------------------------------------------- fetching


class _Server:
    """A local HTTP server on 127.0.0.1 serving one folder, counting requests."""

    def __init__(self, folder: Path):
        self.requests = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    folder = tmp_path / "served"
    folder.mkdir()
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    with _Server(folder) as server:
        yield folder, server


def test_fetch_checks_sha256_and_caches(served, tmp_path):
    folder, server = served
    payload = b"binary weights " * 1000
    (folder / "w.h5").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    path = pretrained.fetch(f"{server.url}/w.h5", good)
    assert path.read_bytes() == payload and path.parent == tmp_path / "cache"
    assert pretrained.fetch(f"{server.url}/w.h5", good) == path
    assert len(server.requests) == 1  # the second call used the cache

    (folder / "bad.h5").write_bytes(payload[:-1] + b"X")  # corrupted on the server
    with pytest.raises(WeightsIntegrityError, match="sha256 mismatch"):
        pretrained.fetch(f"{server.url}/bad.h5", good)
    assert not (tmp_path / "cache" / "bad.h5").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["w.h5"]  # no partial download left
    with pytest.raises(ValueError, match="64 hex"):
        pretrained.fetch(f"{server.url}/w.h5", "abc")


def test_remote_card_loads_through_create_model(served, monkeypatch):
    """Remote weights (as for weights="imagenet") go through the sha256-checked fetch."""
    folder, server = served
    shipped = pretrained.get_card("binarynet_mlp", "digits")
    shutil.copy(pretrained.weights_path(shipped), folder / "mlp.h5")
    remote = Card(**{**shipped.__dict__, "tag": "digits-mirror", "url": f"{server.url}/mlp.h5",
                     "weights_file": "mlp.h5", "source": "test mirror"})
    monkeypatch.setitem(pretrained.lookup._REMOTE_CARDS, ("binarynet_mlp", "digits-mirror"), remote)
    assert "digits-mirror" in pretrained.list_pretrained("binarynet_mlp")
    a = create_model("binarynet_mlp", weights="digits")
    b = create_model("binarynet_mlp", weights="digits-mirror")
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    corrupt = Card(**{**remote.__dict__, "tag": "digits-corrupt", "sha256": "0" * 64,
                      "weights_file": "mlp-corrupt.h5"})
    monkeypatch.setitem(pretrained.lookup._REMOTE_CARDS, ("binarynet_mlp", "digits-corrupt"), corrupt)
    with pytest.raises(WeightsIntegrityError):
        create_model("binarynet_mlp", weights="digits-corrupt")


# The larq-zoo factory of each family whose ImageNet card bnnzoo lists.
LARQ_ZOO_FACTORIES = {
    "birealnet18": "larq_zoo.literature.birealnet:BiRealNetFactory",
    "binary_resnet_e18": "larq_zoo.literature.resnet_e:BinaryResNetE18Factory",
    "xnornet": "larq_zoo.literature.xnornet:XNORNetFactory",
    "binary_alexnet": "larq_zoo.literature.binary_alex_net:BinaryAlexNetFactory",
    "dorefanet": "larq_zoo.literature.dorefanet:DoReFaNetFactory",
    "binary_densenet28": "larq_zoo.literature.densenet:BinaryDenseNet28Factory",
    "quicknet": "larq_zoo.sota.quicknet:QuickNetFactory",
    "quicknet_small": "larq_zoo.sota.quicknet:QuickNetSmallFactory",
    "quicknet_large": "larq_zoo.sota.quicknet:QuickNetLargeFactory",
}


def _download_call(factory_cls) -> dict:
    """The keyword arguments of the `download_pretrained_model(...)` call in a larq-zoo
    factory's source (or a parent's) that fetches the top-included weights."""
    import ast
    import inspect

    for cls in inspect.getmro(factory_cls):
        if not cls.__module__.startswith("larq_zoo"):
            continue
        for node in ast.walk(ast.parse(inspect.getsource(cls).strip())):
            func = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(func, "attr", getattr(func, "id", None)) == "download_pretrained_model":
                kw = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
                if {"model", "version", "file", "file_hash"} <= set(kw) and "_notop" not in kw["file"]:
                    return kw
    raise AssertionError(f"no ImageNet download in the source of {factory_cls.__name__}")


@pytest.mark.parametrize("name", sorted(LARQ_ZOO_FACTORIES))
def test_imagenet_cards_are_the_files_larq_zoo_downloads(name):
    """The plain-data table `pretrained.LARQ_ZOO_IMAGENET` names the release file and
    sha256 that the installed larq-zoo's own factory downloads, and its docstring's top-1."""
    import importlib
    import inspect

    module, _, attr = LARQ_ZOO_FACTORIES[name].partition(":")
    factory = getattr(importlib.import_module(module), attr)
    calls = [_download_call(factory)]
    card = pretrained.get_card(name, "imagenet")
    assert card.sha256 == calls[0]["file_hash"] and card.weights_file == calls[0]["file"]
    assert card.url.endswith(f"/{calls[0]['model']}-{calls[0]['version']}/{calls[0]['file']}")
    assert "_notop" not in card.weights_file
    assert card.input_shape == (224, 224, 3) and card.num_classes == 1000
    doc = getattr(inspect.getmodule(factory), pretrained.LARQ_ZOO_IMAGENET[name]["function"]).__doc__
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in doc.splitlines()]
    top1, top5, params, _ = next(r for r in rows if len(r) == 4 and r[0].endswith("%") and r[1].endswith("%"))
    assert float(top1.rstrip("% ")) == pytest.approx(100 * card.test_accuracy)
    assert float(top5.rstrip("% ")) == pytest.approx(100 * card.top5_accuracy)
    assert int(params.replace(" ", "").replace(",", "")) == card.params


def test_imagenet_table_covers_every_larq_zoo_family():
    assert set(pretrained.LARQ_ZOO_IMAGENET) == set(LARQ_ZOO_FACTORIES)
    assert pretrained.get_card("quicknet_large", "imagenet").test_accuracy == pytest.approx(0.669, abs=0.01)


# --------------------------------------------------------------------------- publishing


def test_publish_from_recipe_writes_a_loadable_card(tmp_path, monkeypatch, digits):
    recipe = tmp_path / "binarynet_mlp-tiny.toml"
    recipe.write_text(
        'description = "tiny"\nmodel = "binarynet_mlp"\ndataset = "digits"\nepochs = 2\n'
        'batch_size = 64\nlearning_rate = 0.003\nmodel_kwargs = { units = 32 }\n'
        '[artifact]\nname = "binarynet_mlp"\ntag = "tiny"\n'
        f'method_evidence = "{_report(tmp_path / "reproduce.json").as_posix()}"\n'
        'method_followed = "bop2ndorder/bop2ndorder_tau0"\n'
    )
    config = training.TrainConfig.from_file(recipe)
    result = training.train(config, tmp_path / "run", arrays=digits, verbose=0)
    card = zoo.publish_from_recipe(recipe, tmp_path / "run", destination=tmp_path / "zoo")
    folder = tmp_path / "zoo" / "binarynet_mlp" / "tiny"
    assert json.loads((folder / "card.json").read_text())["sha256"] == pretrained.sha256_file(folder / "weights.h5")
    written = json.loads((folder / "card.json").read_text())["method_selection"]
    assert written == card.method_selection and written["followed"] == "bop2ndorder/bop2ndorder_tau0"
    assert written["best_on_validation"] == "proxconnect/bnn_plus" and written["beats_ste"] == ["bop2ndorder/bop2ndorder_tau0"]
    assert card.test_accuracy == pytest.approx(result.metrics["test_accuracy"])
    assert card.model_kwargs == {"units": 32} and card.data_license.startswith("UCI")
    monkeypatch.setenv(pretrained.ARTIFACTS_ENV, str(tmp_path / "zoo"))
    assert pretrained.list_pretrained("binarynet_mlp") == ["tiny"]
    model = create_model("binarynet_mlp", weights="tiny")
    x = digits.x_test[:16]
    np.testing.assert_array_equal(model.predict(x, verbose=0), result.model.predict(x, verbose=0))


def _report(path: Path, pending=("fsg",)) -> Path:
    """A reproduction report as benchmarks/reproduce.py writes it, three arms ranked."""
    def row(claim, arm, val, vs_ste, reference=False):
        return {"claim": claim, "arm": arm, "label": arm.upper(), "val": {"mean": val}, "test": {"mean": val - 0.01},
                "reference": reference, "vs_ste": vs_ste}
    rows = [row("proxconnect", "bnn_plus", 0.92, [0.001, -0.002, 0.004]),
            row("bop2ndorder", "bop2ndorder_tau0", 0.919, [0.004, 0.001, 0.007]),
            row("proxconnect", "bnn", 0.918, None, reference=True)]
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    summary = {"proxconnect": {"verdict": "reversed"}, **{c: {"verdict": "pending"} for c in pending}}
    path.write_text(json.dumps({"benchmark": "reproduce", "version": 2, "date": "2026-12-07",
                                "dataset": "fashion_mnist", "summary": summary,
                                "cnn_ranking": {"reference": "proxconnect/bnn", "rows": rows}}))
    return path


def test_method_selection_states_the_validation_winner_and_what_beats_ste(tmp_path):
    report = json.loads(_report(tmp_path / "reproduce.json", pending=("hyper_binarynet", "fsg")).read_text())
    selection = pretrained.method_selection(report, source="reproduce.json")
    assert selection["source"] == "reproduce.json"
    assert selection["reference"] == selection["followed"] == "proxconnect/bnn"
    assert selection["best_on_validation"] == "proxconnect/bnn_plus"
    assert selection["validation_accuracy"] == 0.92 and selection["reference_validation_accuracy"] == 0.918
    # Only an interval whose lower end is above 0 beats STE (bnn_plus's straddles 0).
    assert selection["beats_ste"] == ["bop2ndorder/bop2ndorder_tau0"]
    assert selection["pending_claims"] == ["fsg", "hyper_binarynet"]
    statement = selection["statement"]
    assert "BNN_PLUS validated best (92.00 % vs STE's 91.80 %)" in statement
    assert "BOP2NDORDER_TAU0 beat STE" in statement and "pending: fsg, hyper_binarynet" in statement
    assert statement.endswith("This recipe uses BNN's method.") and "BinaryNet CNN at width 0.25" in statement
    assert pretrained.method_selection(report, "bop2ndorder/bop2ndorder_tau0")["followed"] == "bop2ndorder/bop2ndorder_tau0"


def test_method_selection_refuses_what_it_cannot_state(tmp_path):
    report = json.loads(_report(tmp_path / "reproduce.json").read_text())
    with pytest.raises(ValueError, match=r"method_followed 'fsg/fsg' is not an arm of 'r.json'.*proxconnect/bnn_plus"):
        pretrained.method_selection(report, "fsg/fsg", source="r.json")
    with pytest.raises(ValueError, match="method_evidence 'other.json' is not a reproduction report"):
        pretrained.method_selection({"benchmark": "zoo_pareto"}, source="other.json")
    with pytest.raises(ValueError, match="is not a reproduction report"):
        pretrained.method_selection([report])
    with pytest.raises(ValueError, match="ranks no arm against STE yet"):
        pretrained.method_selection({"benchmark": "reproduce", "cnn_ranking": {"rows": []}})


def test_publish_refuses_method_evidence_it_cannot_read_before_reading_the_run(tmp_path):
    recipe = tmp_path / "r.toml"
    (tmp_path / "bad.json").write_text("{not json")
    for evidence, expected in ((tmp_path / "missing.json", FileNotFoundError), (tmp_path / "bad.json", ValueError)):
        recipe.write_text('model = "binarynet_mlp"\ndataset = "digits"\n'
                          f'[artifact]\nmethod_evidence = "{evidence.as_posix()}"\n')
        with pytest.raises(expected, match=f"{evidence.name}.*(does not exist|is not valid JSON)"):
            zoo.publish_from_recipe(recipe, tmp_path / "no-run", destination=tmp_path / "zoo")
    assert not (tmp_path / "zoo").exists()


def test_method_selection_reads_the_published_report():
    """The committed report keeps the shape method_selection reads (the reactnet recipes name it)."""
    report = json.loads((REPO / "docs/benchmarks/reproduce.json").read_text())
    selection = pretrained.method_selection(report)
    top = min(report["cnn_ranking"]["rows"], key=lambda r: r["rank"])
    assert selection["best_on_validation"] == f"{top['claim']}/{top['arm']}"
    assert selection["reference"] == report["cnn_ranking"]["reference"] == selection["followed"]
    assert set(selection["pending_claims"]) == {c for c, s in report["summary"].items() if s["verdict"] == "pending"}
    for recipe in ("reactnet-fashion_mnist.toml", "reactnet-fashion_mnist-small.toml"):
        artifact = tomllib.loads((REPO / "recipes" / recipe).read_text())["artifact"]
        assert artifact["method_evidence"] == "docs/benchmarks/reproduce.json"


@pytest.mark.parametrize("artifact,words", [
    ('mehtod_evidence = "r.json"', ["unknown keys ['mehtod_evidence']", "method_evidence"]),
    ('method_followed = "proxconnect/bnn"', ["method_followed needs method_evidence"]),
    ("method_evidence = 3", ["method_evidence must be a string, got 3"]),
])
def test_recipe_artifact_keys_are_checked(artifact, words):
    recipe = tomllib.loads(f"[artifact]\n{artifact}\n")
    with pytest.raises(ValueError) as err:
        pretrained.recipe_artifact(recipe, "binarynet_mlp", "digits")
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)


def test_artifacts_ship_in_the_package():
    """pyproject maps artifacts/ to bnnzoo._artifacts and its package data covers every artifact file."""
    import fnmatch
    import importlib.resources

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools_cfg = config["tool"]["setuptools"]
    assert setuptools_cfg["package-dir"]["bnnzoo._artifacts"] == "artifacts"
    assert "bnnzoo._artifacts" in setuptools_cfg["packages"]
    patterns = setuptools_cfg["package-data"]["bnnzoo._artifacts"]
    root = Path(str(importlib.resources.files("bnnzoo._artifacts")))
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(f.endswith("card.json") for f in files)
    for f in files:
        if f != "__init__.py":
            assert any(fnmatch.fnmatch(f, pat) or fnmatch.fnmatch(f, pat.replace("**/", "")) for pat in patterns), f


@pytest.mark.slow
def test_built_wheel_contains_the_artifacts(tmp_path):
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True)
    (wheel,) = tmp_path.glob("bnnzoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name, tag in SHIPPED:
        assert f"bnnzoo/_artifacts/{name}/{tag}/card.json" in names
        assert f"bnnzoo/_artifacts/{name}/{tag}/weights.h5" in names


def test_larq_zoo_release_file_loads_with_weights_imagenet(served, monkeypatch):
    """A file laid out like larq-zoo's ImageNet release (saved by larq-zoo's own
    factory) loads through create_model(..., weights="imagenet") after the sha256 check."""
    from larq_zoo.literature.densenet import BinaryDenseNet28Factory

    folder, server = served
    reference = BinaryDenseNet28Factory(num_classes=1000, include_top=True, weights=None).build()
    reference.save_weights(str(folder / "binary_densenet_28_weights.h5"))
    card = pretrained.get_card("binary_densenet28", "imagenet")
    local = Card(**{**card.__dict__, "url": f"{server.url}/binary_densenet_28_weights.h5",
                    "sha256": pretrained.sha256_file(folder / "binary_densenet_28_weights.h5")})
    monkeypatch.setitem(pretrained.lookup._REMOTE_CARDS, ("binary_densenet28", "imagenet"), local)
    model = create_model("binary_densenet28", weights="imagenet")
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1000)
    for ours, theirs in zip(model.weights, reference.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert server.requests == ["/binary_densenet_28_weights.h5"]


def test_cli_evaluate_and_list_show_the_card(capsys):
    from bnnzoo.cli import main

    card = pretrained.get_card("binarynet_mlp", "digits")
    assert main(["evaluate", "--model", "binarynet_mlp", "--weights", "digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert abs(result["test_accuracy"] - card.test_accuracy) <= 0.003
    assert main(["list", "binarynet*"]) == 0
    out = capsys.readouterr().out
    assert format_card_line(card) in out
    assert "quicknet" not in out


def test_one_cache_variable_for_weights_and_data_and_the_deprecated_alias(tmp_path, monkeypatch):
    from bnnzoo import datasets_cache

    assert pretrained.CACHE_ENV == datasets_cache.CACHE_ENV == "BNNZOO_CACHE"
    monkeypatch.delenv("BNNZOO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained.cache_dir() == datasets_cache.cache_root() == tmp_path / "xdg" / "bnnzoo"
    monkeypatch.setenv("BNNZOO_CACHE_DIR", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="BNNZOO_CACHE_DIR is deprecated; set BNNZOO_CACHE"):
        assert pretrained.cache_dir() == tmp_path / "old"
    monkeypatch.setenv("BNNZOO_CACHE", str(tmp_path / "new"))  # the new name wins, silently
    assert pretrained.cache_dir() == datasets_cache.cache_root() == tmp_path / "new"
