"""Export: every registered family converts with LCE and agrees with Keras.

Tests that convert with LCE are marked `lce` (larq-compute-engine: the Python 3.11 and
3.12 stacks); the plain TFLite and SavedModel paths run on every stack.

Models are built small with random weights *and random batch-norm statistics*: with
the initial statistics (mean 0, variance 1) a binary layer's integer outputs sit
exactly on the sign threshold, where any runtime may break ties differently.
"""

from __future__ import annotations

import inspect
import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
from bnnzoo import export
from bnnzoo.export import ExportError, export_model

# Input shape and options that keep each family small. Families not listed get
# max(min_input_size, 32) pixels and width=0.125 where they take a width.
SMALL = {
    "binarynet_mlp": ((8, 8, 1), {"units": 64}),
    "binarynet": ((8, 8, 1), {"width": 1 / 16}),  # 2x2 and 1x1 maps: the small-map fix
    "binary_resnet20": ((16, 16, 3), {"width": 0.25}),
    "reactnet": ((8, 8, 1), {"width": 0.125, "depth": 8}),  # RSign/RPReLU/scale around bconvs, 2x2 maps
    "binary_alexnet": ((64, 64, 3), {}),
    "dorefanet": ((64, 64, 3), {}),
}
# The families the default suite converts; the others (larq-zoo ImageNet families,
# each takes ~30-90 s to convert here) run in the slow suite.
FAST = ("binarynet_mlp", "binarynet", "reactnet")
# Registered families that cannot be exported, with the reason. (None today.)
NOT_CONVERTIBLE: dict[str, str] = {}


def small_model(name: str, **overrides) -> tf.keras.Model:
    spec = bnnzoo.models.get_model_spec(name)
    shape, kwargs = SMALL.get(name, (None, None))
    if shape is None:
        size = max(spec.min_input_size, 32)
        shape = (size, size, 3)
        kwargs = {"width": 0.125} if "width" in inspect.signature(spec.builder).parameters else {}
    return bnnzoo.models.create_model(name, input_shape=shape, num_classes=10, **{**kwargs, **overrides})


def randomize_batch_norm(model: tf.keras.Model, seed: int = 1) -> tf.keras.Model:
    rng = np.random.default_rng(seed)
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.37, 3.0, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(1.0, 20.0, n).astype("float32"))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0.13, 0.5, n).astype("float32"))
    return model


def images_for(model, n=24, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *model.input_shape[1:])).astype("float32")


def check_family(name, tmp_path):
    model = randomize_batch_norm(small_model(name))
    report = export_model(model, "lce", tmp_path / f"{name}.tflite", images=images_for(model),
                          latency_repeats=3, atol=1e-3)
    assert report.top1_agreement == 1.0
    assert report.max_abs_diff <= 1e-3
    assert report.file_bytes == (tmp_path / f"{name}.tflite").stat().st_size > 0
    ops = report.ops
    # A family with binary convolutions must export them as LCE binary kernels.
    if any(isinstance(l, lq.layers.QuantConv2D) and l.input_quantizer is not None
           and getattr(l.input_quantizer, "precision", 1) == 1 for l in model.submodules):
        assert ops.get("LceBconv2d", 0) > 0, ops
    return report


@pytest.mark.lce
@pytest.mark.parametrize("name", FAST)
def test_export_small_family_agrees_with_keras(name, tmp_path):
    assert name in bnnzoo.models.list_models()
    report = check_family(name, tmp_path)
    assert "reference kernels" in report.latency_note or "aarch64" in report.latency_note


@pytest.mark.lce
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in bnnzoo.models.list_models() if n not in FAST])
def test_export_every_registered_family(name, tmp_path):
    if name in NOT_CONVERTIBLE:
        with pytest.raises(ExportError):
            check_family(name, tmp_path)
        return
    check_family(name, tmp_path)


def test_not_convertible_list_names_registered_families():
    assert set(NOT_CONVERTIBLE) <= set(bnnzoo.models.list_models())


def test_small_map_zero_padding_fix_is_exact():
    """OnePadCorrectedQuantConv2D equals a zero-padded binary conv (strides 1 and 2)."""
    rng = np.random.default_rng(0)
    for shape, strides in (((2, 2, 8), 1), ((1, 1, 4), 1), ((5, 3, 4), 2)):
        layer = lq.layers.QuantConv2D(6, 3, strides=strides, padding="same", input_quantizer="ste_sign",
                                      kernel_quantizer="ste_sign", use_bias=False)
        layer.build((None, *shape))
        fixed = export.OnePadCorrectedQuantConv2D.from_config({**layer.get_config(), "pad_values": 1.0})
        fixed.build((None, *shape))
        fixed.set_weights(layer.get_weights())
        x = rng.standard_normal((4, *shape)).astype("float32")
        np.testing.assert_array_equal(fixed(x).numpy(), layer(x).numpy())


@pytest.mark.parametrize("use_bias, activation", [(False, None), (True, "relu")])
def test_binary_dense_as_1x1_conv_is_exact(use_bias, activation):
    dense = lq.layers.QuantDense(24, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                 use_bias=use_bias, activation=activation,
                                 bias_initializer="random_normal")
    dense.build((None, 40))
    conv = export.BinaryDenseAsConv2D.from_dense(dense)
    x = np.random.default_rng(0).standard_normal((5, 40)).astype("float32")
    np.testing.assert_array_equal(conv(x).numpy(), dense(x).numpy())
    assert conv.kernel.shape == (1, 1, 40, 24)
    clone = export.BinaryDenseAsConv2D.from_config(conv.get_config())
    assert clone.get_config() == conv.get_config()
@pytest.mark.lce


def test_binary_dense_layers_export_bit_packed(tmp_path):
    """Binary QuantDense layers become LceBconv2d (1x1), not float FULLY_CONNECTED."""
    model = randomize_batch_norm(bnnzoo.models.create_model(
        "binarynet_mlp", input_shape=(8, 8, 1), units=256, hidden_layers=3))
    binary_dense = [l for l in model.layers if isinstance(l, lq.layers.QuantDense) and l.input_quantizer is not None]
    assert len(binary_dense) >= 2
    report = export_model(model, "lce", tmp_path / "mlp.tflite", images=images_for(model),
                          latency_repeats=0, atol=1e-3)
    assert report.top1_agreement == 1.0 and report.max_abs_diff <= 1e-3
    assert report.ops.get("LceBconv2d", 0) == len(binary_dense)
    # Only the float input layer stays FULLY_CONNECTED: far below 32 bits per weight.
    assert report.ops.get("FULLY_CONNECTED", 0) <= 1
    plain = export.convert(model, "tflite")
    assert report.file_bytes < len(plain) / 3
@pytest.mark.lce


def test_learned_gradient_models_export_plain_sign_layers(tmp_path):
    """HyperConv + annealed quantizers -> plain QuantConv2D/QuantDense with ste_sign."""
    model = randomize_batch_norm(bnnzoo.models.create_model(
        "binarynet", input_shape=(8, 8, 1), width=1 / 16, hyper=True,
        input_quantizer="ste_warmup", kernel_quantizer="bnnpp"))
    inference = export.inference_model(model)
    assert not any(bnnzoo.layers.is_hyper_layer(l) for l in inference.layers)
    quantizers = [getattr(l, a) for l in inference.layers for a in ("input_quantizer", "kernel_quantizer")
                  if getattr(l, a, None) is not None]
    assert quantizers and all(isinstance(q, lq.quantizers.SteSign) for q in quantizers)
    report = export_model(model, "lce", tmp_path / "hyper.tflite", images=images_for(model),
                          latency_repeats=0, atol=1e-3, allow_non_binary=True)  # not annealed: smooth forward
    binary_layers = [l for l in inference.layers if isinstance(l, (lq.layers.QuantConv2D, lq.layers.QuantDense))
                     and l.input_quantizer is not None]
    assert report.top1_agreement == 1.0 and report.ops.get("LceBconv2d", 0) == len(binary_layers)


def test_annealed_quantizer_at_exact_sign_has_identical_inference_form():
    model = randomize_batch_norm(bnnzoo.models.create_model(
        "binarynet_mlp", input_shape=(8, 8, 1), units=32, input_quantizer="bnnpp", kernel_quantizer="bnnpp"))
    x = images_for(model)
    for layer in model.layers:
        for q in (getattr(layer, "input_quantizer", None), getattr(layer, "kernel_quantizer", None)):
            if q is not None:
                q.set_annealed(exact_sign=True)
    inference = export.inference_model(model)
    assert inference is not model
    np.testing.assert_allclose(inference.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
@pytest.mark.lce


def test_unconvertible_layer_is_named(tmp_path):
    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Flatten()(inputs)
    x = tf.keras.layers.Lambda(lambda t: tf.math.igamma(t * t + 1.0, t * t + 1.0), name="my_igamma")(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax")(x)
    model = tf.keras.Model(inputs, outputs)
    with pytest.raises(ExportError, match=r"layer 'my_igamma' \(Lambda\).*Igamma"):
        export_model(model, "lce", tmp_path / "bad.tflite", images=images_for(model))


def test_bad_arguments():
    model = small_model("binarynet_mlp")
    with pytest.raises(ValueError, match="format must be one of lce, tflite, savedmodel, got 'onnx'"):
        export_model(model, "onnx")
    with pytest.raises(ExportError, match="neither a run directory"):
        export.load_source("no/such/run")
    with pytest.raises(ExportError, match="test images have shape"):
        export_model(model, "tflite", images=np.zeros((2, 4, 4, 1), np.float32))


def test_cli_exports_a_run_directory(tmp_path, capsys):
    from bnnzoo import cli
    from bnnzoo.training import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(model="binarynet_mlp", dataset="digits", epochs=1, model_kwargs={"units": 32}),
          run, verbose=0)
    out = tmp_path / "model.tflite"
    assert cli.main(["export", str(run), "--format", "tflite", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "digits" and report["test_images"] == 359
    assert report["top1_agreement"] == 1.0 and out.stat().st_size == report["file_bytes"]
    assert cli.main(["export", str(run), "--format", "savedmodel", "--out", str(tmp_path / "sm")]) == 0
    assert "top-1 agreement 100.00 %" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["export", str(tmp_path / "missing"), "--format", "tflite"])
    assert "neither a run directory" in capsys.readouterr().err


# ------------------------------------------------------------ the package's layout

# The names `bnnzoo.export` had as one module; they stay importable from the package.
PUBLIC_BEFORE_SPLIT = (
    "FORMATS", "LCE_CUSTOM_OPS", "BinaryDenseAsConv2D", "ExportError", "ExportReport",
    "OnePadCorrectedQuantConv2D", "add_parser", "cmd_export", "convert", "custom_ops",
    "export_model", "flatbuffer_stats", "inference_model", "lce_compatible_model", "load_source",
    "run_flatbuffer", "verify_flatbuffer",
)


def _export_modules() -> list[str]:
    import pkgutil

    return sorted(info.name for info in pkgutil.iter_modules(export.__path__))


def test_every_public_name_is_importable_from_the_package():
    import importlib

    assert set(PUBLIC_BEFORE_SPLIT) <= set(export.__all__)
    assert len(export.__all__) == len(set(export.__all__))
    for name in export.__all__:
        assert getattr(export, name) is not None, name
    defined = []
    for module_name in _export_modules():
        module = importlib.import_module(f"bnnzoo.export.{module_name}")
        for name in module.__all__:
            assert getattr(export, name) is getattr(module, name), f"{module_name}.{name}"
            defined.append(name)
    # each public name is defined in exactly one module
    assert sorted(defined) == sorted(export.__all__)


def test_package_modules_import_each_other_without_a_circle():
    """The sibling imports form a DAG, all at module top level (no lazy or guarded imports).

    Importing any submodule runs the package's `__init__` first, whose order would hide a
    circle between siblings, so the graph is read from the source.
    """
    import ast
    from pathlib import Path

    root = Path(export.__file__).parent
    graph: dict[str, set[str]] = {}
    for name in _export_modules():
        tree = ast.parse((root / f"{name}.py").read_text())
        top = set(map(id, tree.body))
        graph[name] = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if any(t == "bnnzoo" or t.startswith("bnnzoo.") for t in targets):
                assert id(node) in top, f"{name}.py line {node.lineno}: bnnzoo import not at top level"
            for target in targets:
                if target.startswith("bnnzoo.export."):
                    graph[name].add(target.split(".")[2])
    done: set[str] = set()

    def visit(name, path):
        assert name not in path, f"import circle: {' -> '.join([*path, name])}"
        if name not in done:
            for dependency in graph[name]:
                visit(dependency, [*path, name])
            done.add(name)

    for name in graph:
        visit(name, [])


# Each module of bnnzoo.export (of bnnzoo) importing in a fresh interpreter is
# test_architecture.py's test_every_module_imports_in_a_fresh_interpreter_in_any_order.


def test_inference_model_requires_exact_sign_when_asked_and_keeps_clip_value():
    q = bnnzoo.quantizers.ForwardBackwardQuantizer(forward="hardtanh", backward="ste", temperature=0.5,
                                                   clip_value=0.5)
    inputs = tf.keras.Input((6,))
    outputs = lq.layers.QuantDense(4, input_quantizer=q, kernel_quantizer="ste_sign")(inputs)
    model = tf.keras.Model(inputs, outputs)
    with pytest.raises(ExportError, match="not annealed to sign yet"):
        export.inference_model(model, require_exact_sign=True)
    assert export.inference_model(model) is not model  # the default only rewrites
    model.layers[1].input_quantizer.set_annealed(exact_sign=True)
    inference = export.inference_model(model, require_exact_sign=True)
    quantizer = inference.layers[1].input_quantizer
    assert isinstance(quantizer, lq.quantizers.SteSign) and quantizer.clip_value == 0.5
    x = images_for(model)
    np.testing.assert_array_equal(inference.predict(x, verbose=0), model.predict(x, verbose=0))
