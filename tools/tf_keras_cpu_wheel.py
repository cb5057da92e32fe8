"""Rebuild the tf-keras wheel so that it depends on `tensorflow-cpu` instead of `tensorflow`.

Why: tf-keras declares `Requires-Dist: tensorflow<2.20,>=2.19`, the full (CUDA-capable)
wheel. The Python 3.12 stack installs `tensorflow-cpu`, which provides the same
`tensorflow` package under another distribution name, so pip would pull a second
TensorFlow over the first and `pip check` would report tf-keras as broken. This
script downloads tf-keras from the index, checks its sha256, and writes the same
code as version `<version>+cpu` (a PEP 440 local version, which `tf-keras==2.19.0`
still matches) with the dependency renamed. `constraints-py312.txt` finds it with
`--find-links build/wheels`. Run by `make` for the 3.12 stack; stdlib only.

    python tools/tf_keras_cpu_wheel.py build/wheels
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "2.19.0"
LOCAL_LABEL = "cpu"
# sha256 of tf_keras-2.19.0-py3-none-any.whl on PyPI.
UPSTREAM_SHA256 = "4f339e800987b39d1548a8c76a7b33b6801a97ec7fcd89c299ec29741f7890bd"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def rewrite_metadata(metadata: str, new_version: str) -> str:
    """`METADATA` with the new version and `tensorflow` requirements renamed to `tensorflow-cpu`."""
    metadata = re.sub(r"^Version: .*$", f"Version: {new_version}", metadata, count=1, flags=re.M)
    renamed = re.sub(r"^Requires-Dist: tensorflow(?=[\s<>=~!;(\[]|$)",
                     "Requires-Dist: tensorflow-cpu", metadata, flags=re.M)
    if renamed == metadata:
        raise ValueError("tf-keras METADATA has no `Requires-Dist: tensorflow` line to rename")
    return renamed


def repack(src: Path, out_dir: Path) -> Path:
    """Write `tf_keras-<version>+cpu-py3-none-any.whl` into `out_dir` from the upstream wheel `src`."""
    new_version = f"{VERSION}+{LOCAL_LABEL}"
    old_info, new_info = f"tf_keras-{VERSION}.dist-info/", f"tf_keras-{new_version}.dist-info/"
    target = out_dir / f"tf_keras-{new_version}-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(target.with_suffix(".tmp"), "w",
                                                      zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            name = item.filename
            if name == old_info + "RECORD":
                continue
            data = zin.read(item)
            if name.startswith(old_info):
                name = new_info + name[len(old_info):]
                if name.endswith("/METADATA"):
                    data = rewrite_metadata(data.decode(), new_version).encode()
            # Same entry dates as upstream, so the rebuilt wheel is byte-for-byte reproducible.
            zout.writestr(zipfile.ZipInfo(name, item.date_time), data, zipfile.ZIP_DEFLATED)
            records.append(f"{name},{_record_hash(data)},{len(data)}")
        records.append(f"{new_info}RECORD,,")
        zout.writestr(zipfile.ZipInfo(new_info + "RECORD", item.date_time), "\n".join(records) + "\n",
                      zipfile.ZIP_DEFLATED)
    target.with_suffix(".tmp").replace(target)
    return target


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1] if len(argv) > 1 else "build/wheels")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"tf_keras-{VERSION}+{LOCAL_LABEL}-py3-none-any.whl"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--only-binary=:all:", f"tf-keras=={VERSION}", "-d", tmp], check=True)
        src = Path(tmp) / f"tf_keras-{VERSION}-py3-none-any.whl"
        sha = hashlib.sha256(src.read_bytes()).hexdigest()
        if sha != UPSTREAM_SHA256:
            print(f"error: {src.name} has sha256 {sha}, expected {UPSTREAM_SHA256}", file=sys.stderr)
            return 1
        repack(src, out_dir)
    print(f"wrote {target} (tf-keras {VERSION} requiring tensorflow-cpu)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
