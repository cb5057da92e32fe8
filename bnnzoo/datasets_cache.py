"""Obtain the real Fashion-MNIST into bnnzoo's data cache, without root where possible.

`make test` (and `make demo`) run this file before anything that needs the data, so a
fresh Debian/Ubuntu machine needs no manual step. In order, it uses:

1. a folder that already holds the four idx files with the expected sha256:
   `$BNNZOO_FASHION_MNIST_DIR`, Debian's `/usr/share/datasets/fashion-mnist/`, or the
   cache `$BNNZOO_CACHE/fashion-mnist` (default `~/.cache/bnnzoo/fashion-mnist`);
2. Debian's `dataset-fashion-mnist` package unpacked into the cache, no root needed:
   a `.deb` already in `/var/cache/apt/archives`, or `apt-get download` (as root,
   after `apt-get update` when the package lists are empty);
3. as root, `apt-get install dataset-fashion-mnist`.

Every file is checked by sha256 before it is used. Where none of this works it
prints one line saying what to do and exits with status 1. Standard library only,
so it runs before TensorFlow is installed or imported:

    python bnnzoo/datasets_cache.py        # prints the folder holding the files
    python -m bnnzoo.datasets_cache        # the same, from an installed bnnzoo
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = [
    "FASHION_MNIST_SHA256",
    "FashionMnistUnavailable",
    "cache_root",
    "ensure_fashion_mnist",
    "fashion_mnist_cache_dir",
    "fashion_mnist_problems",
]

CACHE_ENV = "BNNZOO_CACHE"
FASHION_MNIST_ENV = "BNNZOO_FASHION_MNIST_DIR"
DEBIAN_PACKAGE_PATH = "usr/share/datasets/fashion-mnist"  # inside the .deb
DEBIAN_DIR = "/" + DEBIAN_PACKAGE_PATH  # where apt-get install puts it
DEBIAN_PACKAGE = "dataset-fashion-mnist"
APT_ARCHIVES = "/var/cache/apt/archives"
# The upstream gzip files (zalandoresearch/fashion-mnist), as Debian ships them.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


class FashionMnistUnavailable(RuntimeError):
    """Fashion-MNIST is not on this machine and could not be obtained."""


def cache_root() -> Path:
    """`$BNNZOO_CACHE`, else `$XDG_CACHE_HOME/bnnzoo`, else `~/.cache/bnnzoo`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "bnnzoo"


def fashion_mnist_cache_dir() -> Path:
    """Where `ensure_fashion_mnist` puts the four idx files."""
    return cache_root() / "fashion-mnist"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fashion_mnist_problems(folder: str | os.PathLike) -> list[str]:
    """What is wrong with `folder` as a Fashion-MNIST folder (empty: all four files verify)."""
    problems = []
    for name, expected in FASHION_MNIST_SHA256.items():
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"{name} missing")
        elif _sha256(path) != expected:
            problems.append(f"{name} has the wrong sha256")
    return problems


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run(cmd: list[str], cwd: str | None = None) -> bool:
    if shutil.which(cmd[0]) is None:
        return False
    result = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return result.returncode == 0


def _downloaded_deb(workdir: str) -> Path | None:
    """A `.deb` of the package: apt's own cache first, else `apt-get download` into `workdir`."""
    cached = sorted(Path(APT_ARCHIVES).glob(f"{DEBIAN_PACKAGE}_*.deb"))
    if cached:
        return cached[-1]
    # apt drops privileges to _apt for downloads; let it write here (harmless warning otherwise).
    os.chmod(workdir, 0o777)
    attempts = [lambda: True]
    if _is_root():  # a fresh container has empty package lists
        attempts.append(lambda: _run(["apt-get", "update", "-qq"]))
    for prepare in attempts:
        if prepare() and _run(["apt-get", "download", "-qq", DEBIAN_PACKAGE], cwd=workdir):
            debs = sorted(Path(workdir).glob(f"{DEBIAN_PACKAGE}_*.deb"))
            if debs:
                return debs[-1]
    return None


def _unpack_into_cache(deb: Path, workdir: str) -> Path | None:
    unpacked = Path(workdir) / "unpacked"
    if not _run(["dpkg-deb", "-x", str(deb), str(unpacked)]):
        return None
    source = unpacked / DEBIAN_PACKAGE_PATH
    if fashion_mnist_problems(source):
        return None
    target = fashion_mnist_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_SHA256:
        # Copy then rename, so a concurrent reader never sees a half-written file.
        partial = target / f".{name}.{os.getpid()}.partial"
        shutil.copyfile(source / name, partial)
        os.replace(partial, target / name)
    return target


def _verified(candidates: list[str | os.PathLike | None]) -> Path | None:
    for cand in candidates:
        if cand and not fashion_mnist_problems(cand):
            return Path(cand)
    return None


def ensure_fashion_mnist() -> Path:
    """The folder holding verified Fashion-MNIST idx files, obtaining them first if needed.

    Raises `FashionMnistUnavailable` with a one-line instruction when no route works.
    """
    found = _verified([os.environ.get(FASHION_MNIST_ENV), DEBIAN_DIR, fashion_mnist_cache_dir()])
    if found:
        return found
    with tempfile.TemporaryDirectory(prefix="bnnzoo-fashion-") as workdir:
        deb = _downloaded_deb(workdir)
        if deb is not None and _unpack_into_cache(deb, workdir) is not None:
            return fashion_mnist_cache_dir()
    if _is_root() and _run(["apt-get", "install", "-y", "-qq", DEBIAN_PACKAGE]):
        found = _verified([DEBIAN_DIR])
        if found:
            return found
    raise FashionMnistUnavailable(
        f"Fashion-MNIST could not be obtained (neither `apt-get download {DEBIAN_PACKAGE}` nor "
        f"`apt-get install` worked here): run `sudo apt-get install {DEBIAN_PACKAGE}`, or put "
        f"{', '.join(FASHION_MNIST_SHA256)} from https://github.com/zalandoresearch/fashion-mnist "
        f"into {fashion_mnist_cache_dir()} (or set {FASHION_MNIST_ENV} to their folder)."
    )


def main() -> int:
    try:
        print(ensure_fashion_mnist())
    except FashionMnistUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
