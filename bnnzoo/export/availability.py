"""Larq Compute Engine is optional: imported only where an LCE conversion or LCE
interpreter is asked for.

LCE 0.16 has wheels for Python 3.11 and 3.12 only, so the Python 3.13 stack has no
`lce` format; `tflite` (plain TFLite, sign as float ops) and `savedmodel` work on
every stack. Asking for LCE where it is missing raises `LceUnavailableError`, one
line naming the stacks that have it.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from types import ModuleType

from bnnzoo.export.errors import ExportError

__all__ = ["LCE_STACKS", "LceUnavailableError", "lce_available", "require_lce"]

LCE_STACKS = "the Python 3.11 stack (make test) and the Python 3.12 stack (make test PYTHON=python3.12)"
"""Where larq-compute-engine is installed (docs/install.md)."""


class LceUnavailableError(ExportError):
    """An LCE conversion, LCE interpreter or LCE measurement was asked for on a stack without LCE."""


def lce_available() -> bool:
    """Whether `larq_compute_engine` can be imported here (without importing it)."""
    if "larq_compute_engine" in sys.modules:
        return sys.modules["larq_compute_engine"] is not None
    return find_spec("larq_compute_engine") is not None


def require_lce(what: str = "the lce format") -> ModuleType:
    """Import and return `larq_compute_engine`, or raise `LceUnavailableError` in one line.

    Args:
        what: what needs LCE, for the message (e.g. `"bnnzoo export --format lce"`).

    Raises:
        LceUnavailableError: LCE is not installed (or does not import) on this stack.
    """
    try:
        import larq_compute_engine
    except ImportError as err:
        here = "Python %d.%d" % sys.version_info[:2]
        raise LceUnavailableError(
            f"{what} needs larq-compute-engine, which this stack ({here}) does not have "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'not installed'}); "
            f"it is installed on {LCE_STACKS}; --format tflite or savedmodel works on every stack"
        ) from None
    return larq_compute_engine
