"""bnnzoo: a Keras/Larq model zoo for binarized neural networks.

Importing bnnzoo registers every quantizer, layer and optimizer as a Keras custom
object, so a saved bnnzoo model reloads with `import bnnzoo` and
`tf.keras.models.load_model` alone.
"""

__version__ = "0.1.0"

from bnnzoo import data, quantizers, optimizers, models, training  # noqa: E402,F401
from bnnzoo import callbacks  # noqa: E402,F401
from bnnzoo import layers, fsg  # noqa: E402,F401

__all__ = ["data", "models", "optimizers", "quantizers", "training", "__version__"]
