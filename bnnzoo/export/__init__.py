"""Export binary models for edge inference and check the result.

`export_model(source, format="lce", out="model.tflite")` turns a trained model into

| format | file | runs in |
| --- | --- | --- |
| `lce` | a TFLite flatbuffer with Larq Compute Engine binary ops (`LceBconv2d`, `LceQuantize`, ...) | LCE's interpreter / LCE runtime on ARM |
| `tflite` | a plain TFLite flatbuffer (binarization as float ops, no LCE ops) | `tf.lite.Interpreter`, any TFLite runtime |
| `savedmodel` | a TensorFlow SavedModel directory of the inference model | TensorFlow Serving, `tf.saved_model.load` |

Before converting, the model is put in its *inference form*
(`inference_model`, the one place bnnzoo makes it): learned-gradient layers
(e.g. `HyperConv2D`) become plain larq layers holding their generated kernel, an
FSG model is unwrapped, and every 1-bit quantizer whose forward pass is not
already one of larq's sign quantizers (annealed quantizers such as BNN++ or
STE-Warmup, forward/backward pairs) is replaced by `ste_sign`, whose forward pass
is the `sign` that training anneals towards. LCE recognises `sign` and emits
binary kernels for it. For `lce`, `lce_compatible_model` then rewrites the two
layer kinds LCE 0.16 gets wrong or stores as float.

A model whose annealed quantizers have not reached exact sign yet
(`bnnzoo.quantizers.binary_forward` False; `inference_model` would change its
outputs) is refused unless `allow_non_binary=True`; `bnnzoo.quantizers.finalize`
finishes one. A float model (no 1-bit quantizer) is exported as it is.

The export is then checked: the converted model runs in its interpreter on test
images and its outputs are compared with the Keras inference model (top-1
agreement must be 100 %, outputs within `atol`). A layer that cannot be
converted raises `ExportError` naming the layer. The file is written only after
the check passed (beside `out`, then renamed over it).

Larq Compute Engine is optional (`availability`): it is imported only for an `lce`
conversion or the LCE interpreter, and the Python 3.13 stack, which has no LCE
wheel, raises `LceUnavailableError` for those in one line; `tflite` and
`savedmodel` work on every stack.

The package's modules, in the order an export uses them: `source` (what to
export), `inference` (the inference form), `lce` (LCE layer rewrites),
`conversion` (the converter, naming the layer at fault), `flatbuffer` (reading
the result), `interpreter` (running it), `verify` (the check), `report`
(`export_model` and its report), `cli` (`bnnzoo export`); `errors` holds
`ExportError`, `availability` whether LCE is installed. Everything public is importable from `bnnzoo.export`.

!!! example
    ```python
    import bnnzoo
    from bnnzoo.export import export_model

    # a trained model: an untrained one has its binary layers' outputs exactly on the
    # sign threshold, where runtimes may break ties differently
    model = bnnzoo.models.create_model("binarynet_mlp", weights="digits")
    report = export_model(model, format="lce", out="mlp.tflite", dataset="digits")
    print(report.summary())
    assert report.top1_agreement == 1.0 and report.test_images > 0
    ```
"""

from __future__ import annotations

from bnnzoo.export.availability import LCE_STACKS, LceUnavailableError, lce_available, require_lce
from bnnzoo.export.cli import add_parser, cmd_export
from bnnzoo.export.conversion import convert
from bnnzoo.export.errors import ExportError
from bnnzoo.export.flatbuffer import LCE_CUSTOM_OPS, custom_ops, flatbuffer_stats
from bnnzoo.export.inference import inference_model
from bnnzoo.export.interpreter import FlatbufferRunner, run_flatbuffer, tflite_interpreter_class
from bnnzoo.export.lce import BinaryDenseAsConv2D, OnePadCorrectedQuantConv2D, lce_compatible_model
from bnnzoo.export.report import FORMATS, ExportReport, export_model
from bnnzoo.export.source import load_source
from bnnzoo.export.verify import verify_flatbuffer, verify_savedmodel

__all__ = [
    "FORMATS",
    "LCE_CUSTOM_OPS",
    "LCE_STACKS",
    "BinaryDenseAsConv2D",
    "ExportError",
    "ExportReport",
    "LceUnavailableError",
    "FlatbufferRunner",
    "OnePadCorrectedQuantConv2D",
    "add_parser",
    "cmd_export",
    "convert",
    "custom_ops",
    "export_model",
    "flatbuffer_stats",
    "inference_model",
    "lce_available",
    "lce_compatible_model",
    "load_source",
    "require_lce",
    "run_flatbuffer",
    "tflite_interpreter_class",
    "verify_flatbuffer",
    "verify_savedmodel",
]
