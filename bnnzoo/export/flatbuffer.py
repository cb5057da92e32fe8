"""Reading a TFLite flatbuffer: its custom ops, operator counts and constant bytes.

Parsed with TensorFlow's own TFLite schema bindings
(`tensorflow.lite.python.schema_py_generated`, on every stack: the same generated
code as the copy in Larq Compute Engine, which is optional). LCE's ops are custom
ops, read by name.
"""

from __future__ import annotations

from typing import Any

from tensorflow.lite.python import schema_py_generated as tflite_schema

__all__ = ["LCE_CUSTOM_OPS", "custom_ops", "flatbuffer_stats"]

LCE_CUSTOM_OPS = frozenset({"LceBconv2d", "LceQuantize", "LceDequantize", "LceBMaxPool2d"})
"""Custom ops that the LCE runtime implements; any other custom op in a flatbuffer
comes from a TensorFlow op that TFLite cannot run."""


def custom_ops(flatbuffer: bytes) -> list[str]:
    """Names of the custom ops (non-builtin) in a TFLite flatbuffer.

    Args:
        flatbuffer: the bytes of a `.tflite` file.

    Returns:
        The sorted, distinct custom op names (e.g. `LceBconv2d`).
    """
    model = tflite_schema.Model.GetRootAs(flatbuffer, 0)
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i).CustomCode()
        if code:
            names.append(code.decode())
    return sorted(set(names))


def flatbuffer_stats(flatbuffer: bytes) -> dict[str, Any]:
    """Operator counts and bytes of constant tensors in a TFLite flatbuffer.

    Args:
        flatbuffer: the bytes of a `.tflite` file.

    Returns:
        `{"constant_bytes": int, "ops": {op name: count}}`, builtin ops by their
        schema name (`FULLY_CONNECTED`), custom ops by theirs (`LceBconv2d`).
    """
    model = tflite_schema.Model.GetRootAs(flatbuffer, 0)
    constant_bytes = 0
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        constant_bytes += buffer.Size() if buffer.Offset() > 1 else buffer.DataLength()
    builtin_names = {v: k for k, v in vars(tflite_schema.BuiltinOperator).items() if not k.startswith("_")}
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
