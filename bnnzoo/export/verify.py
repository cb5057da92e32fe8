"""Checking an export against the Keras model it came from."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from bnnzoo.export.errors import ExportError
from bnnzoo.export.interpreter import run_flatbuffer

__all__ = ["verify_flatbuffer", "verify_savedmodel"]


def _agreement(expected: np.ndarray, got: np.ndarray, atol: float, what: str) -> tuple[float, float]:
    """Top-1 agreement and max |difference| of two output batches; `ExportError` if they disagree."""
    agreement = float(np.mean(expected.argmax(-1) == got.argmax(-1)))
    diff = float(np.max(np.abs(expected - got)))
    if agreement < 1.0 or not diff <= atol:
        raise ExportError(
            f"{what} disagrees with the Keras model on {len(expected)} images: top-1 "
            f"agreement {100 * agreement:.2f} %, max |output diff| {diff:.3g} (atol {atol})"
        )
    return agreement, diff


def verify_flatbuffer(flatbuffer: bytes, model: tf.keras.Model, images: np.ndarray,
                      format: str = "lce", atol: float = 1e-4) -> tuple[float, float]:
    """Top-1 agreement and max |output difference| of a flatbuffer vs `model` on `images`.

    Args:
        flatbuffer: the converted model.
        model: the Keras model it was converted from (its inference form).
        images: the check inputs.
        format: `"lce"` or `"tflite"`, the interpreter to run it in.
        atol: largest allowed |output difference|.

    Returns:
        `(top1_agreement, max_abs_diff)`.

    Raises:
        ExportError: when agreement is below 100 % or outputs differ by more than `atol`.
    """
    images = np.asarray(images, np.float32)
    expected = model.predict(images, batch_size=256, verbose=0)
    got = run_flatbuffer(flatbuffer, images, format)
    return _agreement(expected, got, atol, f"the {format} export")


def verify_savedmodel(path: str | os.PathLike, model: tf.keras.Model, images: np.ndarray,
                      atol: float = 1e-4) -> tuple[float, float]:
    """Top-1 agreement and max |output difference| of a SavedModel vs `model` on `images`.

    Args:
        path: the SavedModel directory (its `serving_default` signature is run).
        model: the Keras model it was saved from.
        images: the check inputs.
        atol: largest allowed |output difference|.

    Returns:
        `(top1_agreement, max_abs_diff)`.

    Raises:
        ExportError: when agreement is below 100 % or outputs differ by more than `atol`.
    """
    images = np.asarray(images, np.float32)
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    expected = model.predict(images, batch_size=256, verbose=0)
    got = np.concatenate([
        next(iter(serve(tf.constant(images[i:i + 256])).values())).numpy()
        for i in range(0, len(images), 256)
    ])
    return _agreement(expected, got, atol, "the SavedModel")
