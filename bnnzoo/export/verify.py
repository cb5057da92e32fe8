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
    return _verify(lambda x: run_flatbuffer(flatbuffer, x, format), model, images, atol, f"the {format} export")


def verify_savedmodel(path: str | os.PathLike, model: tf.keras.Model, images: np.ndarray,
                      atol: float = 1e-4) -> tuple[float, float]:
    """`verify_flatbuffer` for a SavedModel: `path` is its directory, whose
    `serving_default` signature is run on `images` in batches of 256 and compared with
    `model`, the Keras model it was saved from. Same returns and `ExportError`."""
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]

    def run(x):
        return np.concatenate([next(iter(serve(tf.constant(x[i:i + 256])).values())).numpy()
                               for i in range(0, len(x), 256)])

    return _verify(run, model, images, atol, "the SavedModel")


def _verify(run, model: tf.keras.Model, images, atol: float, what: str) -> tuple[float, float]:
    """`_agreement` of `run(images)` with `model`'s predictions."""
    images = np.asarray(images, np.float32)
    expected = model.predict(images, batch_size=256, verbose=0)
    return _agreement(expected, run(images), atol, what)
