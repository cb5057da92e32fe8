"""Larq Compute Engine is optional (docs/install.md): bnnzoo imports it only for an LCE
conversion, the LCE interpreter or a card's LCE measurement. Without it (the Python
3.13 stack, simulated here by blocking the import) those say in one line which stacks
have it, and everything else, plain TFLite export included, works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
from bnnzoo import cli, export, zoo
from bnnzoo.export import LceUnavailableError, export_model

# Prepended to a fresh interpreter's code: `import larq_compute_engine` (and any
# submodule) raises ImportError, as on a stack where it is not installed.
BLOCK_LCE = "import sys; sys.modules['larq_compute_engine'] = None; "


@pytest.fixture
def no_lce(monkeypatch):
    """This process without larq-compute-engine: its import raises ImportError."""
    monkeypatch.setitem(sys.modules, "larq_compute_engine", None)
    assert not export.lce_available()


def _trained_mlp() -> tf.keras.Model:
    return bnnzoo.models.create_model("binarynet_mlp", weights="digits")


def _one_line_naming_the_lce_stacks(message: str) -> None:
    assert "\n" not in message.strip(), message
    assert "needs larq-compute-engine" in message and "Python 3.11 stack" in message
    assert "Python 3.12 stack" in message and "--format tflite" in message


def test_lce_format_without_lce_is_one_line_naming_the_stacks(no_lce, digits):
    model = _trained_mlp()
    with pytest.raises(LceUnavailableError) as err:
        export_model(model, "lce", images=digits.x_test[:8])
    _one_line_naming_the_lce_stacks(str(err.value))
    assert isinstance(err.value, export.ExportError)  # what `bnnzoo export` reports in one line
    with pytest.raises(LceUnavailableError):
        export.convert(model, "lce")
    with pytest.raises(LceUnavailableError):
        export.FlatbufferRunner(b"", "lce")


def test_cli_export_lce_without_lce_fails_in_one_line(no_lce, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["export", "binarynet_mlp:digits", "--format", "lce", "--out", str(tmp_path / "m.tflite")])
    assert done.value.code not in (0, None)
    err = capsys.readouterr().err
    _one_line_naming_the_lce_stacks(err)
    assert not (tmp_path / "m.tflite").exists()


def test_plain_tflite_export_works_without_lce(no_lce, digits, tmp_path):
    """Sign ops as float TFLite ops, run in LiteRT or TensorFlow's interpreter: 100 % top-1."""
    report = export_model(_trained_mlp(), "tflite", tmp_path / "mlp.tflite", images=digits.x_test[:64],
                          latency_repeats=2)
    assert report.top1_agreement == 1.0 and report.max_abs_diff <= 1e-4
    assert report.ops and not any(op.startswith("Lce") for op in report.ops), report.ops
    assert export.custom_ops((tmp_path / "mlp.tflite").read_bytes()) == []
    assert "LCE" not in report.latency_note


def test_tflite_interpreter_is_litert_where_installed_else_tensorflows():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    assert export.tflite_interpreter_class() is Interpreter


def test_zoo_lce_measurement_without_lce_is_one_line(no_lce, tmp_path):
    with pytest.raises(LceUnavailableError) as err:
        zoo.measure_lce_export(_trained_mlp(), "digits")
    assert "lce_export = true" in str(err.value)
    _one_line_naming_the_lce_stacks(str(err.value))

    # publishing a recipe that asks for the measurement refuses before writing anything
    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "binarynet_mlp"\ndataset = "digits"\nepochs = 1\n[artifact]\nlce_export = true\n')
    with pytest.raises(LceUnavailableError):
        zoo.publish_from_recipe(recipe, tmp_path / "no-run", destination=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_cli_starts_and_lists_without_lce(tmp_path):
    """A fresh process where the import fails: nothing imports LCE at module level."""
    code = (BLOCK_LCE + "import _bnnzoo_cli, bnnzoo.zoo, bnnzoo.export; sys.argv = ['bnnzoo', 'list']; "
            "rc = _bnnzoo_cli.main(); "
            "assert sys.modules['larq_compute_engine'] is None; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "binarynet_mlp" in done.stdout


@pytest.mark.lce
def test_where_lce_is_installed_it_is_imported_only_for_lce(tmp_path):
    """On the LCE stacks: importing bnnzoo, its CLI and the export package, and a plain
    TFLite export, leave larq_compute_engine unimported; an lce export imports it."""
    code = ("import sys, json, bnnzoo, bnnzoo.cli, bnnzoo.zoo; from bnnzoo.export import export_model; "
            "m = bnnzoo.models.create_model('binarynet_mlp', weights='digits'); "
            "x = bnnzoo.data.load_arrays('digits').x_test[:8]; "
            "export_model(m, 'tflite', 'a.tflite', images=x, latency_repeats=0); "
            "before = 'larq_compute_engine' in sys.modules; "
            "r = export_model(m, 'lce', 'b.tflite', images=x, latency_repeats=0); "
            "print(json.dumps([before, 'larq_compute_engine' in sys.modules, r.top1_agreement]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, True, 1.0]


def test_flatbuffers_are_read_with_tensorflows_schema(no_lce):
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(inputs))
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    stats = export.flatbuffer_stats(flatbuffer)
    assert stats["ops"] == {"FULLY_CONNECTED": 1} and stats["constant_bytes"] >= 4 * 15
    np.testing.assert_allclose(export.run_flatbuffer(flatbuffer, np.ones((2, 4)), "tflite"),
                               model.predict(np.ones((2, 4)), verbose=0), atol=1e-5)
