"""Export binary models for edge inference and check the result.

`export_model(source, format="lce", out="model.tflite")` turns a trained model into

| format | file | runs in |
| --- | --- | --- |
| `lce` | a TFLite flatbuffer with Larq Compute Engine binary ops (`LceBconv2d`, `LceQuantize`, ...) | LCE's interpreter / LCE runtime on ARM |
| `tflite` | a plain TFLite flatbuffer (binarization as float ops, no LCE ops) | `tf.lite.Interpreter`, any TFLite runtime |
| `savedmodel` | a TensorFlow SavedModel directory of the inference model | TensorFlow Serving, `tf.saved_model.load` |

Before converting, the model is put in its *inference form*
(`inference_model`): learned-gradient layers (e.g. `HyperConv2D`) become plain
larq layers holding their generated kernel, and every 1-bit quantizer whose
forward pass is not already larq's `sign` (annealed quantizers such as BNN++ or
STE-Warmup, forward/backward pairs) is replaced by `ste_sign`, whose forward pass
is the `sign` that training anneals towards. LCE recognises `sign` and emits
binary kernels for it.

The export is then checked: the converted model runs in its interpreter on test
images and its outputs are compared with the Keras inference model (top-1
agreement must be 100 %, outputs within `atol`). A layer that cannot be
converted raises `ExportError` naming the layer.

!!! example
    ```python
    import bnnzoo
    from bnnzoo.export import export_model

    # a trained model: an untrained one has its binary layers' outputs exactly on the
    # sign threshold, where runtimes may break ties differently
    model = bnnzoo.models.create_model("binarynet_mlp", weights="digits")
    report = export_model(model, format="lce", out="mlp.tflite", dataset="digits")
    print(report.summary())
    ```
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import larq as lq
import numpy as np
import tensorflow as tf

__all__ = [
    "BinaryDenseAsConv2D",
    "FORMATS",
    "ExportError",
    "ExportReport",
    "add_parser",
    "convert",
    "custom_ops",
    "export_model",
    "flatbuffer_stats",
    "inference_model",
    "lce_compatible_model",
    "load_source",
    "run_flatbuffer",
    "verify_flatbuffer",
]

FORMATS = ("lce", "tflite", "savedmodel")

# Custom ops that the LCE runtime implements; any other custom op in a flatbuffer
# comes from a TensorFlow op that TFLite cannot run.
LCE_CUSTOM_OPS = frozenset({"LceBconv2d", "LceQuantize", "LceDequantize", "LceBMaxPool2d"})

# larq quantizers whose forward pass LCE converts to binary ops as they are.
_NATIVE_QUANTIZERS = (
    lq.quantizers.SteSign,
    lq.quantizers.ApproxSign,
    lq.quantizers.SwishSign,
    lq.quantizers.MagnitudeAwareSign,
)
_NATIVE_QUANTIZER_NAMES = {"ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign"}


class ExportError(ValueError):
    """A model (or one of its layers) cannot be exported, or the export disagrees with Keras."""


# --------------------------------------------------------------------------- sources


def load_source(source) -> tuple[tf.keras.Model, str | None]:
    """The model named by `source` and the dataset it was trained on (if known).

    `source` is a `tf.keras.Model`, a run directory written by `bnnzoo train`, a
    saved model file (`.keras`/`.h5`), or `NAME:TAG` for a pretrained model.
    """
    if isinstance(source, tf.keras.Model):
        return source, None
    text = str(source)
    path = Path(text)
    if path.exists():
        from bnnzoo import training

        dataset = None
        config = (path if path.is_dir() else path.parent) / "config.json"
        if config.is_file():
            dataset = json.loads(config.read_text()).get("dataset")
        return training.load_model(path), dataset
    if ":" in text:
        name, tag = text.split(":", 1)
        from bnnzoo import models

        models.get_model_spec(name)  # unknown names list the valid ones
        dataset = None
        try:
            from bnnzoo import pretrained

            dataset = getattr(pretrained.get_card(name, tag), "dataset", None)
        except ImportError:
            pass
        return models.create_model(name, weights=tag), dataset
    raise ExportError(
        f"source {text!r} is neither a run directory, a saved model file nor NAME:TAG"
    )


# --------------------------------------------------------------------------- inference form


def _is_native(quantizer) -> bool:
    if quantizer is None:
        return True
    if isinstance(quantizer, str):
        return quantizer in _NATIVE_QUANTIZER_NAMES
    return isinstance(quantizer, _NATIVE_QUANTIZERS)


def _inference_quantizer(quantizer):
    """The quantizer used at inference in place of `quantizer`.

    Multi-bit quantizers (e.g. DoReFa activations) stay as they are: they convert
    to float ops.
    """
    if not _replaceable(quantizer):
        return quantizer
    custom = getattr(quantizer, "inference_quantizer", None)
    return custom() if callable(custom) else lq.quantizers.SteSign()


_QUANTIZER_ATTRS = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")


def _replaceable(quantizer) -> bool:
    """A 1-bit quantizer that LCE would not see as `sign` (or one that names its own)."""
    if _is_native(quantizer) or isinstance(quantizer, str):
        return False
    return callable(getattr(quantizer, "inference_quantizer", None)) or getattr(
        quantizer, "precision", None) == 1


def _needs_rewrite(layer) -> bool:
    return any(_replaceable(getattr(layer, attr, None)) for attr in _QUANTIZER_ATTRS)


def inference_model(model: tf.keras.Model) -> tf.keras.Model:
    """`model` with only plain `sign` binarization and no learned-gradient machinery.

    Learned-gradient layers are converted by `bnnzoo.layers.to_inference_model`
    when that helper exists; annealed and custom 1-bit quantizers become
    `ste_sign` (a quantizer may define `inference_quantizer()` to choose its own).
    Returns `model` itself when nothing needs changing.
    """
    try:
        from bnnzoo import fsg as _fsg
    except ImportError:
        _fsg = None
    if _fsg is not None and isinstance(model, _fsg.FSGModel):
        model = _fsg.unwrap(model)
    try:
        from bnnzoo import layers as _layers
    except ImportError:
        _layers = None
    if _layers is not None and any(_layers.is_hyper_layer(layer) for layer in _all_layers(model)):
        model = _layers.to_inference_model(model)
    if not any(_needs_rewrite(layer) for layer in _all_layers(model)):
        return model

    def clone(layer):
        if isinstance(layer, tf.keras.Model):
            return inference_model(layer)
        if not _needs_rewrite(layer):
            return layer.__class__.from_config(layer.get_config())
        config = layer.get_config()
        for attr in _QUANTIZER_ATTRS:
            if attr in config:
                q = _inference_quantizer(getattr(layer, attr))
                config[attr] = lq.quantizers.serialize(q) if hasattr(q, "get_config") else q
        return layer.__class__.from_config(config)

    new = tf.keras.models.clone_model(model, clone_function=clone)
    new.set_weights(model.get_weights())
    return new


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, tf.keras.Model):
            yield from _all_layers(layer)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    effective = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class OnePadCorrectedQuantConv2D(lq.layers.QuantConv2D):
    """A zero-padded binary convolution computed as LCE computes one-padding exactly.

    Measured here: LCE 0.16 computes a zero-padded (`padding="same"`, `pad_values=0`)
    binary convolution wrongly when the input feature map is smaller than the kernel
    (e.g. 3x3 on 2x2, as in BinaryNet on 8x8 digits). This layer pads with +1
    (larq's `pad_values=1.0`, exact in LCE) and subtracts the padded positions'
    contribution, a constant \\(C = \\operatorname{conv}(1 - \\operatorname{pad}_0(1), Q(W))\\),
    so its outputs equal the zero-padded layer's. The subtraction is done on a
    reshaped tensor so that LCE does not fuse the spatial constant into the
    convolution's per-channel bias (which its kernels reject).
    """

    def call(self, inputs):
        outputs = super().call(inputs)
        height, width, channels = (int(d) for d in inputs.shape[1:])
        strides, dilation = self.strides, self.dilation_rate
        pad_h = _same_padding(height, self.kernel_size[0], strides[0], dilation[0])
        pad_w = _same_padding(width, self.kernel_size[1], strides[1], dilation[1])
        mask = 1.0 - tf.pad(tf.ones([1, height, width, channels]), [[0, 0], pad_h, pad_w, [0, 0]])
        kernel = tf.convert_to_tensor(self.kernel)  # a tensor: custom gradients reject variables
        kernel = self.kernel_quantizer(kernel) if self.kernel_quantizer else kernel
        correction = tf.nn.conv2d(mask, kernel, strides, "VALID", dilations=dilation)
        if self.activation is not None and self.activation is not tf.keras.activations.linear:
            raise ExportError(f"layer {self.name!r}: a fused activation cannot be corrected")
        n = int(np.prod(outputs.shape[1:]))
        flat = tf.reshape(outputs, [-1, n, 1]) - tf.reshape(correction, [1, n, 1])
        return tf.reshape(flat, [-1, *outputs.shape[1:]])


def _lce_small_map_layers(model: tf.keras.Model) -> set[str]:
    names = set()
    for layer in model.layers:
        if not isinstance(layer, lq.layers.QuantConv2D) or layer.input_quantizer is None:
            continue
        if layer.padding != "same" or getattr(layer, "pad_values", 0.0) != 0.0:
            continue
        if isinstance(layer, OnePadCorrectedQuantConv2D):
            continue
        height, width = layer.input_shape[1:3]
        kh, kw = layer.kernel_size
        if (height is not None and height < kh) or (width is not None and width < kw):
            names.add(layer.name)
    return names


class BinaryDenseAsConv2D(lq.layers.QuantConv2D):
    """A binary dense layer computed as a 1x1 binary convolution, for LCE.

    LCE 0.16 has binary convolutions but no binary fully-connected kernel: a
    `QuantDense` converts to a float `FULLY_CONNECTED` with ±1 weights stored as
    float32. This layer takes the same `(batch, features)` input, reshapes it to
    `(batch, 1, 1, features)`, applies a 1x1 `QuantConv2D` whose kernel is the dense
    kernel reshaped to `(1, 1, features, units)`, and flattens the result, so the
    outputs are identical and LCE converts it to a bit-packed `LceBconv2d`.

    !!! example
        ```python
        import larq as lq
        import numpy as np
        from bnnzoo.export import BinaryDenseAsConv2D

        dense = lq.layers.QuantDense(8, input_quantizer="ste_sign", kernel_quantizer="ste_sign")
        dense.build((None, 16))
        conv = BinaryDenseAsConv2D.from_dense(dense)
        x = np.random.default_rng(0).standard_normal((2, 16)).astype("float32")
        assert (conv(x).numpy() == dense(x).numpy()).all()
        ```
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_spec = tf.keras.layers.InputSpec(ndim=2)

    @classmethod
    def from_dense(cls, dense: lq.layers.QuantDense) -> "BinaryDenseAsConv2D":
        """The equivalent layer for `dense`, built and holding `dense`'s weights when
        `dense` is built."""
        config = dict(dense.get_config())
        config["filters"] = config.pop("units")
        config["kernel_size"] = 1
        layer = cls.from_config(config)
        if dense.built:
            features = int(dense.kernel.shape[0])
            layer.build(tf.TensorShape([None, features]))
            weights = dense.get_weights()
            layer.set_weights([weights[0].reshape(1, 1, *weights[0].shape), *weights[1:]])
        return layer

    def build(self, input_shape):
        features = int(tf.TensorShape(input_shape)[-1])
        super().build(tf.TensorShape([None, 1, 1, features]))
        self.input_spec = tf.keras.layers.InputSpec(ndim=2, axes={-1: features})

    def call(self, inputs):
        outputs = super().call(tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]]))
        return tf.reshape(outputs, [-1, self.filters])


def _binary_dense_layers(model: tf.keras.Model) -> set[str]:
    """Names of `model`'s QuantDense layers with binary inputs and kernels on 2-D inputs."""
    names = set()
    for layer in model.layers:
        if type(layer) is not lq.layers.QuantDense:
            continue
        if layer.input_quantizer is None or layer.kernel_quantizer is None:
            continue
        if any(getattr(q, "precision", 1) != 1 for q in (layer.input_quantizer, layer.kernel_quantizer)):
            continue
        if len(layer.input_shape) == 2:
            names.add(layer.name)
    return names


def lce_compatible_model(model: tf.keras.Model) -> tf.keras.Model:
    """`model` rewritten where LCE 0.16 would otherwise be wrong or wasteful (LCE only).

    - every zero-padded binary convolution on a feature map smaller than its kernel
      becomes the exact `OnePadCorrectedQuantConv2D`;
    - every binary `QuantDense` on a 2-D input becomes `BinaryDenseAsConv2D`, so it is
      stored bit-packed instead of as float32 ±1 weights.

    Outputs are unchanged. Nested models with small-map convolutions are refused
    (`ExportError` naming the layer); dense layers inside nested models are left as
    they are.
    """
    for layer in _all_layers(model):
        if isinstance(layer, tf.keras.Model) and _lce_small_map_layers(layer):
            name = sorted(_lce_small_map_layers(layer))[0]
            raise ExportError(
                f"layer {name!r} in nested model {layer.name!r}: zero-padded binary convolution "
                "on a map smaller than its kernel is computed wrongly by LCE 0.16; use "
                "pad_values=1.0 or a larger input size"
            )
    small_maps = _lce_small_map_layers(model)
    dense = _binary_dense_layers(model)
    if not small_maps and not dense:
        return model

    def clone(layer):
        if layer.name in small_maps:
            config = layer.get_config()
            config["pad_values"] = 1.0
            return OnePadCorrectedQuantConv2D.from_config(config)
        if layer.name in dense:
            return BinaryDenseAsConv2D.from_dense(layer)
        return layer.__class__.from_config(layer.get_config())

    new = tf.keras.models.clone_model(model, clone_function=clone)
    for old_layer, new_layer in zip(model.layers, new.layers):
        if old_layer.name not in dense:  # `from_dense` already copied those (reshaped)
            new_layer.set_weights(old_layer.get_weights())
    return new


# --------------------------------------------------------------------------- conversion


def _schema():
    from larq_compute_engine.mlir.python import tflite_schema

    return tflite_schema


def custom_ops(flatbuffer: bytes) -> list[str]:
    """Names of the custom ops (non-builtin) in a TFLite flatbuffer."""
    model = _schema().Model.GetRootAs(flatbuffer, 0)
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i).CustomCode()
        if code:
            names.append(code.decode())
    return sorted(set(names))


def flatbuffer_stats(flatbuffer: bytes) -> dict[str, Any]:
    """Operator counts and bytes of constant tensors in a TFLite flatbuffer."""
    schema = _schema()
    model = schema.Model.GetRootAs(flatbuffer, 0)
    constant_bytes = 0
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        constant_bytes += buffer.Size() if buffer.Offset() > 1 else buffer.DataLength()
    builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops: dict[str, int] = {}
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for j in range(graph.OperatorsLength()):
            code = model.OperatorCodes(graph.Operators(j).OpcodeIndex())
            name = code.CustomCode()
            name = name.decode() if name else builtin_names.get(
                max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            ops[name] = ops.get(name, 0) + 1
    return {"constant_bytes": int(constant_bytes), "ops": dict(sorted(ops.items()))}


def _convert_raw(model: tf.keras.Model, fmt: str) -> bytes:
    if fmt == "lce":
        from larq_compute_engine import convert_keras_model

        return convert_keras_model(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return converter.convert()


def _bad_ops(flatbuffer: bytes, fmt: str) -> list[str]:
    allowed = LCE_CUSTOM_OPS if fmt == "lce" else frozenset()
    return [op for op in custom_ops(flatbuffer) if op not in allowed]


def _layer_problem(layer, fmt: str) -> str | None:
    """Why `layer` on its own cannot be converted (None when it can)."""
    shapes = layer.input_shape if isinstance(layer.input_shape, list) else [layer.input_shape]
    inputs = [tf.keras.Input(shape=tuple(s[1:]), batch_size=1) for s in shapes]
    try:
        outputs = layer(inputs if len(inputs) > 1 else inputs[0])
        flatbuffer = _convert_raw(tf.keras.Model(inputs, outputs), fmt)
    except Exception as err:  # noqa: BLE001 - any converter failure is the answer
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
    bad = _bad_ops(flatbuffer, fmt)
    return f"uses TensorFlow ops that TFLite cannot run: {', '.join(bad)}" if bad else None


def _find_bad_layer(model: tf.keras.Model, fmt: str, overall: str) -> ExportError:
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.InputLayer):
            continue
        if isinstance(layer, tf.keras.Model):
            try:
                _convert_checked(layer, fmt)
            except ExportError as err:
                return err
            continue
        problem = _layer_problem(layer, fmt)
        if problem:
            return ExportError(
                f"layer {layer.name!r} ({type(layer).__name__}) cannot be converted to {fmt}: {problem}"
            )
    return ExportError(f"model {model.name!r} cannot be converted to {fmt}: {overall}")


def _convert_checked(model: tf.keras.Model, fmt: str) -> bytes:
    try:
        flatbuffer = _convert_raw(model, fmt)
    except Exception as err:  # noqa: BLE001
        raise _find_bad_layer(model, fmt, f"{type(err).__name__}: {err}") from err
    bad = _bad_ops(flatbuffer, fmt)
    if bad:
        raise _find_bad_layer(model, fmt, f"unsupported ops {', '.join(bad)}")
    return flatbuffer


def convert(model: tf.keras.Model, format: str = "lce") -> bytes:
    """Convert the inference form of `model` to a TFLite flatbuffer (`lce` or `tflite`).

    Raises:
        ExportError: naming the first layer that cannot be converted.
    """
    if format not in ("lce", "tflite"):
        raise ValueError(f"format must be 'lce' or 'tflite' for a flatbuffer, got {format!r}")
    model = inference_model(model)
    if format == "lce":
        model = lce_compatible_model(model)
    return _convert_checked(model, format)


# --------------------------------------------------------------------------- running


class _FlatbufferRunner:
    """One-image-at-a-time runner over LCE's or TFLite's interpreter."""

    def __init__(self, flatbuffer: bytes, fmt: str, num_threads: int = 1):
        self.fmt = fmt
        if fmt == "lce":
            from larq_compute_engine.tflite.python.interpreter import Interpreter

            self.lce = Interpreter(flatbuffer, num_threads=num_threads)
        else:
            self.tfl = tf.lite.Interpreter(model_content=flatbuffer, num_threads=num_threads)
            self.tfl.allocate_tensors()
            self.inp = self.tfl.get_input_details()[0]["index"]
            self.out = self.tfl.get_output_details()[0]["index"]

    def one(self, image: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(image[None], dtype=np.float32)
        if self.fmt == "lce":
            return self.lce.interpreter.predict([batch])[0]
        self.tfl.set_tensor(self.inp, batch)
        self.tfl.invoke()
        return self.tfl.get_tensor(self.out)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.concatenate([self.one(x) for x in images])


def run_flatbuffer(flatbuffer: bytes, images: np.ndarray, format: str = "lce") -> np.ndarray:
    """Outputs of a flatbuffer on `images` (LCE's interpreter for `lce`, TFLite's otherwise)."""
    return _FlatbufferRunner(flatbuffer, format).predict(np.asarray(images, np.float32))


def _latency_ms(runner: _FlatbufferRunner, image: np.ndarray, repeats: int) -> float:
    runner.one(image)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.one(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def _latency_note(fmt: str) -> str:
    arch = platform.machine()
    if fmt == "lce" and arch.lower() not in ("aarch64", "arm64", "armv7l"):
        return (f"LCE interpreter on {arch}: reference kernels, not optimized; "
                "not representative of ARM latency")
    return f"{'LCE' if fmt == 'lce' else 'TFLite'} interpreter on {arch}, 1 thread"


@dataclass
class ExportReport:
    """What `export_model` wrote and how the export compares with Keras."""

    format: str
    path: str
    file_bytes: int
    params: int
    binary_params: int
    bits_per_weight: float
    test_images: int
    dataset: str | None
    top1_agreement: float
    max_abs_diff: float
    latency_ms: float | None
    latency_note: str
    ops: dict[str, int] = field(default_factory=dict)
    inference_vs_original_agreement: float | None = None

    def summary(self) -> str:
        lines = [
            f"exported {self.format} -> {self.path}",
            f"  file size        {self.file_bytes / 1024:.1f} KiB",
            f"  bits per weight  {self.bits_per_weight:.2f}  ({self.binary_params} of {self.params} "
            "parameters binary; constant bytes x 8 / Keras parameters)",
            f"  check            {self.test_images} images of {self.dataset or 'given inputs'}: "
            f"top-1 agreement {100 * self.top1_agreement:.2f} %, max |output diff| {self.max_abs_diff:.2e}",
        ]
        if self.inference_vs_original_agreement is not None:
            lines.append(f"  inference form vs trained model: top-1 agreement "
                         f"{100 * self.inference_vs_original_agreement:.2f} %")
        if self.latency_ms is not None:
            lines.append(f"  latency          {self.latency_ms:.3f} ms/image  ({self.latency_note})")
        if self.ops:
            lines.append("  ops              " + ", ".join(f"{k} x{v}" for k, v in self.ops.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_flatbuffer(flatbuffer: bytes, model: tf.keras.Model, images: np.ndarray,
                      format: str = "lce", atol: float = 1e-4) -> tuple[float, float]:
    """Top-1 agreement and max |output difference| of a flatbuffer vs `model` on `images`.

    Raises:
        ExportError: when agreement is below 100 % or outputs differ by more than `atol`.
    """
    images = np.asarray(images, np.float32)
    expected = model.predict(images, batch_size=256, verbose=0)
    got = run_flatbuffer(flatbuffer, images, format)
    agreement = float(np.mean(expected.argmax(-1) == got.argmax(-1)))
    diff = float(np.max(np.abs(expected - got)))
    if agreement < 1.0 or not diff <= atol:
        raise ExportError(
            f"the {format} export disagrees with the Keras model on {len(images)} images: top-1 "
            f"agreement {100 * agreement:.2f} %, max |output diff| {diff:.3g} (atol {atol})"
        )
    return agreement, diff


def _verify_savedmodel(path: Path, model: tf.keras.Model, images: np.ndarray, atol: float):
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    expected = model.predict(images, batch_size=256, verbose=0)
    got = np.concatenate([
        next(iter(serve(tf.constant(images[i:i + 256])).values())).numpy()
        for i in range(0, len(images), 256)
    ])
    agreement = float(np.mean(expected.argmax(-1) == got.argmax(-1)))
    diff = float(np.max(np.abs(expected - got)))
    if agreement < 1.0 or not diff <= atol:
        raise ExportError(f"the SavedModel disagrees with Keras: agreement {agreement:.4f}, diff {diff:.3g}")
    return agreement, diff


def _test_images(model, dataset, images, num_images, data_dir=None):
    if images is None:
        if dataset is None:
            rng = np.random.default_rng(0)
            shape = tuple(model.input_shape[1:])
            images = rng.standard_normal((num_images or 64,) + shape).astype(np.float32)
        else:
            from bnnzoo import data

            images = data.load_arrays(dataset, data_dir=data_dir).x_test
    images = np.asarray(images, np.float32)
    if num_images:
        images = images[:num_images]
    if tuple(images.shape[1:]) != tuple(model.input_shape[1:]):
        raise ExportError(
            f"test images have shape {images.shape[1:]}, the model expects {model.input_shape[1:]}"
        )
    return images


def export_model(
    source,
    format: str = "lce",
    out: str | os.PathLike | None = None,
    *,
    dataset: str | None = None,
    images: np.ndarray | None = None,
    num_images: int | None = None,
    data_dir: str | None = None,
    atol: float = 1e-4,
    latency_repeats: int = 50,
) -> ExportReport:
    """Export `source` to `format`, write it to `out` and check it against Keras.

    Args:
        source: a Keras model, run directory, saved model file or `NAME:TAG`.
        format: one of `FORMATS`.
        out: output file (`lce`, `tflite`) or directory (`savedmodel`); default
            `<model name>.tflite` / `<model name>_savedmodel`.
        dataset: dataset whose test images check the export (default: the run's
            or the pretrained card's; random inputs if neither is known).
        images: explicit check images (overrides `dataset`).
        num_images: check on the first N test images only (default: all).
        atol: largest allowed |output difference| (outputs are softmax probabilities).
        latency_repeats: single-image runs timed for the latency figure (0: skip).

    Raises:
        ExportError: a layer that cannot be converted (named), or an export that
            disagrees with the Keras model.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    original, source_dataset = load_source(source)
    dataset = dataset or source_dataset
    model = inference_model(original)
    images = _test_images(model, dataset, images, num_images, data_dir)
    same = None
    if model is not original:
        same = float(np.mean(
            original.predict(images, batch_size=256, verbose=0).argmax(-1)
            == model.predict(images, batch_size=256, verbose=0).argmax(-1)
        ))
    memory = _memory(model)
    out = Path(out or (f"{model.name}.tflite" if format != "savedmodel" else f"{model.name}_savedmodel"))
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "savedmodel":
        tf.saved_model.save(model, str(out))
        agreement, diff = _verify_savedmodel(out, model, images, atol)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        return ExportReport(
            format=format, path=str(out), file_bytes=size, params=memory["params"],
            binary_params=memory["binary_params"], bits_per_weight=8 * size / max(memory["params"], 1),
            test_images=len(images), dataset=dataset, top1_agreement=agreement, max_abs_diff=diff,
            latency_ms=None, latency_note="", inference_vs_original_agreement=same,
        )
    flatbuffer = convert(model, format)
    out.write_bytes(flatbuffer)
    agreement, diff = verify_flatbuffer(flatbuffer, model, images, format, atol)
    stats = flatbuffer_stats(flatbuffer)
    latency = (_latency_ms(_FlatbufferRunner(flatbuffer, format), images[0], latency_repeats)
               if latency_repeats else None)
    return ExportReport(
        format=format, path=str(out), file_bytes=len(flatbuffer), params=memory["params"],
        binary_params=memory["binary_params"],
        bits_per_weight=8 * stats["constant_bytes"] / max(memory["params"], 1),
        test_images=len(images), dataset=dataset, top1_agreement=agreement, max_abs_diff=diff,
        latency_ms=latency, latency_note=_latency_note(format), ops=stats["ops"],
        inference_vs_original_agreement=same,
    )


def _memory(model) -> dict[str, int]:
    profile = lq.models.ModelProfile(model)
    return {"params": int(model.count_params()), "binary_params": int(profile.weight_count(bitwidth=1))}


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers) -> None:
    """Add `bnnzoo export` to the CLI."""
    from bnnzoo.cli import positive_float, positive_int

    p = subparsers.add_parser(
        "export", help="convert a model to LCE/TFLite/SavedModel and check it against Keras"
    )
    p.add_argument("source", metavar="RUN_OR_MODEL",
                   help="run directory, saved model file, or NAME:TAG of a pretrained model")
    p.add_argument("--format", "-f", choices=FORMATS, default="lce")
    p.add_argument("--out", "-o", help="output file (directory for savedmodel)")
    p.add_argument("--dataset", "-d", help="dataset whose test images check the export")
    p.add_argument("--data-dir")
    p.add_argument("--num-images", type=positive_int, help="check on the first N test images")
    p.add_argument("--atol", type=positive_float, default=1e-4,
                   help="largest allowed |output difference| (default 1e-4)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from bnnzoo.cli import _fail
    from bnnzoo.data import DataUnavailableError

    try:
        report = export_model(args.source, args.format, args.out, dataset=args.dataset,
                              num_images=args.num_images, data_dir=args.data_dir, atol=args.atol)
    except (ExportError, ValueError, FileNotFoundError, DataUnavailableError) as err:
        _fail(str(err))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0
