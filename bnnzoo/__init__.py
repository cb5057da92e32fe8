"""bnnzoo: a Keras/Larq model zoo for binarized neural networks.

Importing bnnzoo registers every quantizer, layer and optimizer as a Keras custom
object, so a saved bnnzoo model reloads with `import bnnzoo` and
`tf.keras.models.load_model` alone.
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys
from importlib.util import find_spec as _find_spec


def _use_keras_2() -> None:
    """Make `tf.keras` Keras 2, before TensorFlow is imported; the one place this is done.

    larq needs Keras 2. TensorFlow <= 2.15 has it as `tf.keras`; from 2.16 `tf.keras`
    is Keras 3 unless `TF_USE_LEGACY_KERAS=1` is set before TensorFlow is imported and
    the `tf-keras` package is installed (the Python 3.12 and 3.13 stacks). TensorFlow reads the
    variable at import, so a TensorFlow imported earlier without it stays on Keras 3.
    """
    if _find_spec("tf_keras") is None:
        # TF 2.15 stack: Keras 2 is built in. The variable (inherited, say, from a
        # process of the other stack) would make TensorFlow look for tf-keras and fail.
        if "tensorflow" not in _sys.modules:
            _os.environ.pop("TF_USE_LEGACY_KERAS", None)
        return
    _os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    tf = _sys.modules.get("tensorflow")
    legacy = _os.environ["TF_USE_LEGACY_KERAS"] in ("true", "True", "1")
    if not legacy or (tf is not None and not getattr(tf, "_tf_uses_legacy_keras", True)):
        reason = ("TensorFlow was imported before bnnzoo, with Keras 3 as tf.keras" if legacy
                  else f"TF_USE_LEGACY_KERAS={_os.environ['TF_USE_LEGACY_KERAS']!r} selects Keras 3")
        raise ImportError(
            f"bnnzoo needs Keras 2 (tf-keras) but {reason}: set TF_USE_LEGACY_KERAS=1 in the "
            "environment before TensorFlow is imported (or import bnnzoo before tensorflow)."
        )


_use_keras_2()

from bnnzoo import data, quantizers, optimizers, models, training  # noqa: E402,F401
from bnnzoo import callbacks  # noqa: E402,F401
from bnnzoo import layers, fsg  # noqa: E402,F401
from bnnzoo import datasets_cache  # noqa: E402,F401
from bnnzoo import distillation  # noqa: E402,F401


def _load_tf_keras_files() -> None:
    """Let Keras 2.15 (the TF 2.15 stack) load `.keras` files written by tf-keras.

    tf-keras records its model classes under `tf_keras.src...` modules, which do not
    exist on that stack; Keras looks registered names up first, so register its own
    classes under theirs. (tf-keras already reads `keras.src...` names the other way.)
    """
    if _find_spec("tf_keras") is not None:
        return
    import tensorflow as tf
    from keras.src.engine.functional import Functional

    tf.keras.utils.get_custom_objects().update({"Functional": Functional, "Sequential": tf.keras.Sequential})


_load_tf_keras_files()

__all__ = ["data", "datasets_cache", "distillation", "models", "optimizers", "quantizers", "training", "__version__"]
