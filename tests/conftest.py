"""Shared test fixtures.

TensorFlow is split into 2 logical CPU devices before anything else touches it, so
that `tf.distribute.MirroredStrategy` tests run on this CPU-only machine.
"""

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Listing *logical* devices would start the runtime and make the split impossible,
# so configure first (physical listing is safe).
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)

import bnnzoo  # noqa: E402,F401

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HAVE_FASHION = any(  # Debian's package, or bnnzoo's cache that `make test` fills first
    os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz"))
    for d in (FASHION_DIR, str(bnnzoo.datasets_cache.fashion_mnist_cache_dir()))
) or bool(os.environ.get("BNNZOO_FASHION_MNIST_DIR"))


@pytest.fixture(scope="session")
def digits():
    """The digits dataset as normalized arrays (loaded once per session)."""
    return bnnzoo.data.load_arrays("digits")


@pytest.fixture(scope="session")
def fashion():
    """Real Fashion-MNIST arrays (`make test` obtains them: bnnzoo/datasets_cache.py)."""
    return bnnzoo.data.load_arrays("fashion_mnist")


@pytest.fixture(scope="session")
def load_script():
    """`load_script("benchmarks/x.py")` imports a repository script by its path
    (benchmarks and training scripts are not part of the package)."""
    repo = Path(__file__).resolve().parents[1]

    def load(relative: str):
        path = repo / relative
        spec = importlib.util.spec_from_file_location(f"bnnzoo_script_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def mirrored_strategy():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) >= 2, "conftest must split the CPU into 2 logical devices"
    return tf.distribute.MirroredStrategy(devices[:2])


def pytest_terminal_summary(terminalreporter):
    """One line per run that CI reads (.ci/run): how the tests marked `lce` (they need
    larq-compute-engine) ended here. On the Python 3.13 stack, which has no LCE, `make
    test` deselects them explicitly and says how many; elsewhere they must run."""
    outcomes: dict[str, str] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "lce" in getattr(report, "keywords", {}) and outcomes.get(report.nodeid) not in ("failed", "error"):
                outcomes[report.nodeid] = outcome
    counts = {k: list(outcomes.values()).count(k) for k in ("passed", "failed", "error", "skipped")}
    terminalreporter.write_line("lce tests: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
