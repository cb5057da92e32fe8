"""Conversion to a TFLite flatbuffer, with the first unconvertible layer named on failure.

A conversion fails either in the converter or by leaving TensorFlow ops in the
flatbuffer that TFLite cannot run (custom ops other than LCE's). In both cases
each layer is then converted on its own to find the first one at fault.
"""

from __future__ import annotations

import tensorflow as tf

from bnnzoo.export.availability import require_lce
from bnnzoo.export.errors import ExportError
from bnnzoo.export.flatbuffer import LCE_CUSTOM_OPS, custom_ops
from bnnzoo.export.inference import inference_model
from bnnzoo.export.lce import lce_compatible_model

__all__ = ["convert"]


def _convert_raw(model: tf.keras.Model, fmt: str) -> bytes:
    if fmt == "lce":
        return require_lce("an lce conversion").convert_keras_model(model)
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


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

    For `lce` the inference form is first made LCE-compatible
    (`lce_compatible_model`).

    Args:
        model: a Keras model (its inference form is taken with `inference_model`).
        format: `"lce"` (LCE binary ops) or `"tflite"` (plain TFLite ops).

    Returns:
        The flatbuffer's bytes.

    Raises:
        ExportError: naming the first layer that cannot be converted.
        LceUnavailableError: `lce` on a stack without larq-compute-engine.
        ValueError: `format` is not a flatbuffer format.
    """
    if format not in ("lce", "tflite"):
        raise ValueError(f"format must be 'lce' or 'tflite' for a flatbuffer, got {format!r}")
    if format == "lce":
        require_lce("an lce conversion")  # before any work, in one line
    model = inference_model(model)
    if format == "lce":
        model = lce_compatible_model(model)
    return _convert_checked(model, format)
