"""The three supported stacks (docs/install.md): Python 3.11 + TF 2.15 (Keras 2 built
in), Python 3.12 + TF 2.19 + tf-keras and Python 3.13 + TF 2.21 + tf-keras + numpy 2.
All give Keras 2 as tf.keras, read each other's model files, and run keras-tuner
searches over tf.keras models. Checks key on the Keras flavour (tf-keras installed or
not) and the stack's pinned TensorFlow, not on the Python version alone.

The cross-stack test runs each other stack's venv in a subprocess when it exists
(`make install PYTHON=...`); otherwise it reads the files that stack wrote into
tests/fixtures/stacks/ (regenerate with `<venv>/bin/python tests/stack_models.py save
tests/fixtures/stacks/py3XX`, then drop shipped.h5 to keep the fixture small).
Keras 2.15 and tf-keras 2.19 read tf-keras 2.21's files through bnnzoo's fallback
(bnnzoo.model_files).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import zipfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
import stack_models
from bnnzoo import model_files
from bnnzoo.training import TrainConfig
from bnnzoo.tuning import BNNHyperModel, make_tuner

REPO = Path(__file__).resolve().parents[1]
# Python -> (venv, the TensorFlow series it pins)
STACKS = {"3.11": (".venv", "2.15."), "3.12": (".venv-py312", "2.19."), "3.13": (".venv-py313", "2.21.")}
THIS = "%d.%d" % sys.version_info[:2]
OTHERS = [v for v in STACKS if v != THIS]
# The Keras flavour: tf-keras (TF >= 2.16, TF_USE_LEGACY_KERAS) or Keras 2 built into TF 2.15.
TF_KERAS_STACK = find_spec("tf_keras") is not None


def _clean_env() -> dict[str, str]:
    """The environment for a fresh process: without this stack's Keras selection."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def test_tf_keras_is_keras_2_on_this_stack():
    assert tf.keras.Model.__module__.split(".")[0] == ("tf_keras" if TF_KERAS_STACK else "keras")
    assert TF_KERAS_STACK == (not tf.__version__.startswith("2.15."))  # tf-keras exactly where TF >= 2.16
    assert tf.__version__.startswith(STACKS[THIS][1]), (THIS, tf.__version__)
    assert hasattr(tf.keras.optimizers, "legacy")  # what larq's optimizers build on


@pytest.mark.parametrize("value, reason", [("1", "imported before bnnzoo"), ("0", "TF_USE_LEGACY_KERAS='0'")])
def test_keras_3_as_tf_keras_is_one_clear_error(monkeypatch, value, reason):
    monkeypatch.setattr(bnnzoo, "_find_spec", lambda name: object())  # as if tf-keras were installed
    monkeypatch.setitem(sys.modules, "tensorflow", types.SimpleNamespace(_tf_uses_legacy_keras=False))
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", value)
    with pytest.raises(ImportError, match=f"{reason}.*set TF_USE_LEGACY_KERAS=1 in the environment before "
                                          "TensorFlow is imported"):
        bnnzoo._use_keras_2()


def test_an_inherited_selection_is_dropped_where_tf_keras_is_absent(monkeypatch):
    """TF 2.15 with TF_USE_LEGACY_KERAS=1 looks for tf-keras and fails, so bnnzoo removes it there."""
    monkeypatch.setattr(bnnzoo, "_find_spec", lambda name: None)
    monkeypatch.delitem(sys.modules, "tensorflow")
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    bnnzoo._use_keras_2()
    assert "TF_USE_LEGACY_KERAS" not in os.environ


def test_importing_tensorflow_first_in_a_fresh_process():
    """TF >= 2.16 chose Keras 3 once TensorFlow is imported, so bnnzoo refuses with its
    error; TF 2.15's tf.keras is Keras 2 whatever the import order, so it just works."""
    done = subprocess.run([sys.executable, "-c", "import tensorflow as tf, bnnzoo; print(tf.keras.Model.__module__)"],
                          env=_clean_env(), capture_output=True, text=True, timeout=600)
    if TF_KERAS_STACK:
        assert done.returncode != 0
        assert done.stderr.strip().splitlines()[-1].startswith("ImportError: bnnzoo needs Keras 2 (tf-keras)")
    else:
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[-1].split(".")[0] == "keras"


def _python_of(stack: str) -> Path | None:
    venv = REPO / STACKS[stack][0]
    return venv / "bin" / "python" if (venv / ".installed-stamp").is_file() else None


@pytest.mark.parametrize("other", OTHERS, ids=[f"py{v.replace('.', '')}" for v in OTHERS])
def test_model_files_load_on_the_other_stacks(other, tmp_path):
    """`.keras` and `.h5` of a fresh model and of a shipped artifact, both directions."""
    here, there = tmp_path / f"py{THIS.replace('.', '')}", tmp_path / f"py{other.replace('.', '')}"
    stack_models.save(here)
    python = _python_of(other)
    if python is not None:
        done = subprocess.run([str(python), str(REPO / "tests" / "stack_models.py"), "check", str(here), "save",
                               str(there)], env=_clean_env(), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    else:
        there = REPO / "tests" / "fixtures" / "stacks" / there.name
    assert json.loads((there / "stack.json").read_text())["python"] == other
    assert stack_models.check(there) == []
    # bnnzoo's own loader (evaluate, export, run directories) reads them too, fallback included
    for path in sorted(there.glob("*.keras")) + sorted(there.glob("*.h5")):
        model = bnnzoo.training.load_model(path)
        np.testing.assert_allclose(model.predict(stack_models._images(), verbose=0),
                                   np.load(there / f"{path.stem}_outputs.npy"), atol=1e-5, err_msg=path.name)


def _with_newer_input_layer(config):
    """A saved config as tf-keras >= 2.20 writes it: InputLayer records `optional`."""
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["optional"] = False
    return config


def test_a_newer_keras_2_file_loads_through_bnnzoo_on_every_stack(digits, tmp_path):
    """The fallback of bnnzoo.model_files, on a file of this stack given tf-keras 2.21's
    InputLayer argument: plain load_model refuses it before tf-keras 2.20, bnnzoo's loader reads
    it everywhere with the same outputs; an argument it cannot drop is refused."""
    model = bnnzoo.models.create_model("binarynet_mlp", weights="digits")
    expected = model.predict(digits.x_test[:16], verbose=0)
    model.save(tmp_path / "plain.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as zin, zipfile.ZipFile(tmp_path / "newer.keras", "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "config.json":
                data = json.dumps(_with_newer_input_layer(json.loads(data))).encode()
            zout.writestr(item, data)
    if stack_models.needs_fallback("2.21.0"):
        with pytest.raises(Exception):
            tf.keras.models.load_model(tmp_path / "newer.keras")
    loaded = bnnzoo.training.load_model(tmp_path / "newer.keras")
    np.testing.assert_allclose(loaded.predict(digits.x_test[:16], verbose=0), expected, atol=1e-6)

    config = _with_newer_input_layer(json.loads(model.to_json()))
    assert model_files.strip_newer_arguments(config) == ["InputLayer.optional"]
    config["config"]["layers"][0]["config"]["optional"] = True
    with pytest.raises(ValueError, match="optional=True"):
        model_files.strip_newer_arguments(config)


def test_keras_tuner_builds_trains_resumes_and_returns_best_models(digits, tmp_path):
    """keras-tuner's own model checks and best-model paths accept tf.keras models."""
    config = TrainConfig(model="binarynet_mlp", dataset="digits", epochs=1, model_kwargs={"units": 32})
    hypermodel = BNNHyperModel(config, "bop2ndorder", arrays=digits)
    tuner = make_tuner("random", hypermodel, max_trials=1, directory=str(tmp_path))
    tuner.search(verbose=0)
    [trial] = tuner.oracle.get_best_trials(1)
    assert trial.status == "COMPLETED"
    assert isinstance(tuner._try_build(trial.hyperparameters), tf.keras.Model)  # kt's type check
    [best] = tuner.get_best_models(1)
    assert isinstance(best, tf.keras.Model)
    images = digits.x_test[:32]
    expected = bnnzoo.training.load_model(Path(tuner.get_trial_dir(trial.trial_id)) / "run").predict(images,
                                                                                                     verbose=0)
    np.testing.assert_allclose(best.predict(images, verbose=0), expected, atol=1e-6)

    # A new tuner on the same project reloads the finished trial instead of rerunning it.
    again = make_tuner("random", hypermodel, max_trials=1, directory=str(tmp_path))
    again.search(verbose=0)
    assert list(again.oracle.trials) == [trial.trial_id]
    np.testing.assert_allclose(again.load_model(trial).predict(images, verbose=0), expected, atol=1e-6)
