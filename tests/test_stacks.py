"""The two supported stacks (docs/install.md): Python 3.11 + TF 2.15 and Python 3.12 +
TF 2.19 + tf-keras. Both give Keras 2 as tf.keras, read each other's model files, and
run keras-tuner searches over tf.keras models.

The cross-stack test runs the other stack's venv in a subprocess when it exists
(`make install PYTHON=...`); otherwise it reads the files that stack wrote into
tests/fixtures/stacks/ (regenerate with `<venv>/bin/python tests/stack_models.py save
tests/fixtures/stacks/py3XX`, then drop shipped.h5 to keep the fixture small).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
import stack_models
from bnnzoo.training import TrainConfig
from bnnzoo.tuning import BNNHyperModel, make_tuner

REPO = Path(__file__).resolve().parents[1]
VENVS = {"3.11": ".venv", "3.12": ".venv-py312"}
THIS = "%d.%d" % sys.version_info[:2]
OTHER = "3.12" if THIS == "3.11" else "3.11"
TF_KERAS_STACK = THIS == "3.12"


def _clean_env() -> dict[str, str]:
    """The environment for a fresh process: without this stack's Keras selection."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def test_tf_keras_is_keras_2_on_this_stack():
    assert tf.keras.Model.__module__.split(".")[0] == ("tf_keras" if TF_KERAS_STACK else "keras")
    assert tf.__version__.startswith("2.19." if TF_KERAS_STACK else "2.15.")
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
    """TF 2.19 chose Keras 3 once TensorFlow is imported, so bnnzoo refuses with its
    error; TF 2.15's tf.keras is Keras 2 whatever the import order, so it just works."""
    done = subprocess.run([sys.executable, "-c", "import tensorflow as tf, bnnzoo; print(tf.keras.Model.__module__)"],
                          env=_clean_env(), capture_output=True, text=True, timeout=600)
    if TF_KERAS_STACK:
        assert done.returncode != 0
        assert done.stderr.strip().splitlines()[-1].startswith("ImportError: bnnzoo needs Keras 2 (tf-keras)")
    else:
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[-1].split(".")[0] == "keras"


def _other_python() -> Path | None:
    venv = REPO / VENVS[OTHER]
    return venv / "bin" / "python" if (venv / ".installed-stamp").is_file() else None


def test_model_files_load_on_the_other_stack(tmp_path):
    """`.keras` and `.h5` of a fresh model and of a shipped artifact, both directions."""
    here, there = tmp_path / f"py{THIS.replace('.', '')}", tmp_path / f"py{OTHER.replace('.', '')}"
    stack_models.save(here)
    other = _other_python()
    if other is not None:
        done = subprocess.run([str(other), str(REPO / "tests" / "stack_models.py"), "check", str(here), "save",
                               str(there)], env=_clean_env(), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    else:
        there = REPO / "tests" / "fixtures" / "stacks" / there.name
    assert json.loads((there / "stack.json").read_text())["python"] == OTHER
    assert stack_models.check(there) == []


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
