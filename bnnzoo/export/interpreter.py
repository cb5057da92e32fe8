"""Running a flatbuffer: LCE's interpreter for `lce`, TFLite's for `tflite`.

TFLite's is LiteRT's (`ai_edge_litert`) where that is installed, else
`tf.lite.Interpreter`; LCE's is imported only for an `lce` flatbuffer.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bnnzoo.export.availability import require_lce

__all__ = ["FlatbufferRunner", "run_flatbuffer", "tflite_interpreter_class"]


def tflite_interpreter_class() -> type:
    """LiteRT's `Interpreter` (`ai_edge_litert`) where installed, else `tf.lite.Interpreter`.

    TensorFlow's own interpreter is deprecated in favour of LiteRT from TF 2.20 but still
    runs plain TFLite flatbuffers; both take `model_content=` and `num_threads=`.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return tf.lite.Interpreter
    return Interpreter


class FlatbufferRunner:
    """One interpreter over a flatbuffer, run one image at a time.

    `tf.lite.Interpreter` cannot run LCE's ops, so an `lce` flatbuffer runs in
    LCE's interpreter (reference kernels on x86) and a `tflite` one in TFLite's.

    Args:
        flatbuffer: the bytes of a `.tflite` file with one input and one output.
        fmt: `"lce"` or `"tflite"`.
        num_threads: interpreter threads.
    """

    def __init__(self, flatbuffer: bytes, fmt: str, num_threads: int = 1):
        self.fmt = fmt
        if fmt == "lce":
            require_lce("the LCE interpreter")
            from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

            self.lce = LceInterpreter(flatbuffer, num_threads=num_threads)
        else:
            self.tfl = tflite_interpreter_class()(model_content=flatbuffer, num_threads=num_threads)
            self.tfl.allocate_tensors()
            self.inp = self.tfl.get_input_details()[0]["index"]
            self.out = self.tfl.get_output_details()[0]["index"]

    def one(self, image: np.ndarray) -> np.ndarray:
        """The output of one image (no batch axis), with a batch axis of 1."""
        batch = np.ascontiguousarray(image[None], dtype=np.float32)
        if self.fmt == "lce":
            return self.lce.interpreter.predict([batch])[0]
        self.tfl.set_tensor(self.inp, batch)
        self.tfl.invoke()
        return self.tfl.get_tensor(self.out)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The outputs of a batch of images, one interpreter run each."""
        return np.concatenate([self.one(x) for x in images])


def run_flatbuffer(flatbuffer: bytes, images: np.ndarray, format: str = "lce") -> np.ndarray:
    """Outputs of a flatbuffer on `images` (LCE's interpreter for `lce`, TFLite's otherwise).

    Args:
        flatbuffer: the bytes of a `.tflite` file.
        images: a batch of model inputs.
        format: `"lce"` or `"tflite"`.

    Returns:
        The outputs, one row per image.
    """
    return FlatbufferRunner(flatbuffer, format).predict(np.asarray(images, np.float32))
