"""Loaded by pytest before tests/conftest.py: bnnzoo is imported first so that it selects
Keras 2 (TF_USE_LEGACY_KERAS on the TF 2.19 stack) before anything imports TensorFlow."""

import bnnzoo  # noqa: F401
