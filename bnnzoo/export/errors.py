"""The one error type of `bnnzoo.export`."""

from __future__ import annotations

__all__ = ["ExportError"]


class ExportError(ValueError):
    """A model (or one of its layers) cannot be exported, or the export disagrees with Keras."""
