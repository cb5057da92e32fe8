"""Set-up without manual steps (docs/install.md): Fashion-MNIST obtained into bnnzoo's
cache by `bnnzoo.datasets_cache` (what `make test` runs first), and the built wheel
installed into a clean venv of this stack (slow).

The cache tests run against a fake machine: no Debian dataset, an empty cache, and an
`apt-get` on PATH that serves a small package built here with `dpkg-deb`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bnnzoo import data, datasets_cache

REPO = Path(__file__).resolve().parents[1]
FAKE_APT_GET = """#!/bin/sh
echo "$*" >> "{log}"
case "$1" in
  update) touch "{updated}" ;;
  download) [ -n "{needs_update}" ] && [ ! -e "{updated}" ] && exit 100; cp "{deb}" . ;;
  *) exit 100 ;;
esac
"""


def _fake_machine(tmp_path, monkeypatch, *, root=False, needs_update=False, apt_works=True):
    if apt_works and shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    files = {name: gzip.compress(f"not really {name}".encode(), mtime=0) for name in datasets_cache.FASHION_MNIST_SHA256}
    monkeypatch.setattr(datasets_cache, "FASHION_MNIST_SHA256",
                        {name: hashlib.sha256(blob).hexdigest() for name, blob in files.items()})
    deb = tmp_path / "dataset-fashion-mnist_1_all.deb"
    if apt_works:
        pkg = tmp_path / "pkg"
        (pkg / "DEBIAN").mkdir(parents=True)
        (pkg / "DEBIAN" / "control").write_text(
            "Package: dataset-fashion-mnist\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n")
        target = pkg / datasets_cache.DEBIAN_PACKAGE_PATH
        target.mkdir(parents=True)
        for name, blob in files.items():
            (target / name).write_bytes(blob)
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg), str(deb)], check=True,
                       capture_output=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    (bin_dir / "apt-get").write_text(FAKE_APT_GET.format(log=log, updated=tmp_path / "updated", deb=deb,
                                                         needs_update="1" if needs_update else ""))
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(datasets_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(datasets_cache.FASHION_MNIST_ENV, raising=False)
    monkeypatch.setattr(datasets_cache, "DEBIAN_DIR", str(tmp_path / "no-debian-package"))
    monkeypatch.setattr(datasets_cache, "APT_ARCHIVES", str(tmp_path / "empty-apt-archives"))
    monkeypatch.setattr(datasets_cache, "_is_root", lambda: root)
    return types.SimpleNamespace(files=files, apt_calls=lambda: log.read_text().split("\n")[:-1] if log.exists() else [])


def test_cache_follows_bnnzoo_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("BNNZOO_CACHE", str(tmp_path / "a"))
    assert datasets_cache.fashion_mnist_cache_dir() == tmp_path / "a" / "fashion-mnist"
    monkeypatch.delenv("BNNZOO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets_cache.fashion_mnist_cache_dir() == tmp_path / "xdg" / "bnnzoo" / "fashion-mnist"


def test_downloads_and_unpacks_the_debian_package_without_root(tmp_path, monkeypatch):
    machine = _fake_machine(tmp_path, monkeypatch)
    folder = datasets_cache.ensure_fashion_mnist()
    assert folder == tmp_path / "cache" / "fashion-mnist"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == machine.files  # no partial files left
    assert machine.apt_calls() == ["download -qq dataset-fashion-mnist"]
    # Second time: verified in place, apt is not asked again; bnnzoo.data reads it.
    assert datasets_cache.ensure_fashion_mnist() == folder
    assert len(machine.apt_calls()) == 1
    monkeypatch.setattr(data, "FASHION_MNIST_DEFAULT_DIR", str(tmp_path / "no-debian-package"))
    assert data._fashion_mnist_dir(None) == folder


def test_as_root_fills_empty_package_lists_first(tmp_path, monkeypatch):
    machine = _fake_machine(tmp_path, monkeypatch, root=True, needs_update=True)
    assert datasets_cache.ensure_fashion_mnist() == tmp_path / "cache" / "fashion-mnist"
    assert [c.split()[0] for c in machine.apt_calls()] == ["download", "update", "download"]


def test_files_with_the_wrong_sha256_are_not_used(tmp_path, monkeypatch):
    _fake_machine(tmp_path, monkeypatch)
    monkeypatch.setitem(datasets_cache.FASHION_MNIST_SHA256, "t10k-labels-idx1-ubyte.gz", "0" * 64)
    with pytest.raises(datasets_cache.FashionMnistUnavailable):
        datasets_cache.ensure_fashion_mnist()
    assert not (tmp_path / "cache" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_where_nothing_works_it_says_what_to_do_in_one_line(tmp_path, monkeypatch):
    machine = _fake_machine(tmp_path, monkeypatch, root=True, apt_works=False)
    with pytest.raises(datasets_cache.FashionMnistUnavailable) as err:
        datasets_cache.ensure_fashion_mnist()
    message = str(err.value)
    assert "\n" not in message
    assert "sudo apt-get install dataset-fashion-mnist" in message and str(tmp_path / "cache") in message
    assert [c.split()[0] for c in machine.apt_calls()] == ["download", "update", "download", "install"]

    # The script's entry point (what `make test` runs) in its own process on the same
    # fake machine: that line on stderr, exit status 1. The file is loaded by its path,
    # as `make test` runs it (bnnzoo and TensorFlow stay unimported); the fake apt-get is
    # on PATH, and Debian's folder and apt's cache point at empty places as above, so a
    # machine where the real package is installed or cached fails the same way.
    entry = ("import importlib.util, sys; "
             f"spec = importlib.util.spec_from_file_location('cache_script', {str(REPO / 'bnnzoo' / 'datasets_cache.py')!r}); "
             "d = importlib.util.module_from_spec(spec); spec.loader.exec_module(d); "
             f"d.DEBIAN_DIR = d.APT_ARCHIVES = {str(tmp_path / 'none')!r}; sys.exit(d.main())")
    done = subprocess.run([sys.executable, "-P", "-c", entry],
                          env=dict(os.environ, BNNZOO_CACHE=str(tmp_path / "cache2")), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert done.stderr.startswith("error: Fashion-MNIST could not be obtained")


@pytest.mark.slow
def test_built_wheel_installs_and_runs_in_a_clean_venv():
    """`make wheel-check`: the wheel with only its constraints file, `bnnzoo list`, a one-epoch run."""
    done = subprocess.run(["make", "wheel-check", f"PYTHON={sys.executable}"], cwd=REPO, capture_output=True,
                          text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "binarynet_mlp" in done.stdout and "test accuracy" in done.stdout.lower()
