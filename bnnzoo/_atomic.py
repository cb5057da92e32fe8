"""Atomic file writes: a file is either its old complete self or its new complete self.

Every writer puts the new content into a temporary file in the target's folder
(same file system), flushes it to disk, then `os.replace`s the target with it,
which POSIX and Windows do atomically. A crash, SIGKILL or full disk during the
write leaves the previous file untouched and at most a hidden `.NAME.*.tmp*` file.

This module imports nothing heavy (no TensorFlow), so that tools and tests can use
it on its own.

!!! example
    ```python
    import tempfile
    from pathlib import Path
    from bnnzoo._atomic import atomic_path, atomic_write_text

    folder = Path(tempfile.mkdtemp())
    atomic_write_text(folder / "notes.txt", "hello\\n")
    with atomic_path(folder / "data.bin") as tmp:  # any writer that takes a path
        tmp.write_bytes(b"\\x00\\x01")
    ```
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "json_safe",
           "replace_directory"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform/file system.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it atomically replaces `path`.

    The temporary name keeps `path`'s suffix (Keras picks the format of
    `model.save`/`save_weights` from it). If the body raises, the temporary file is
    removed and `path` is left as it was.

    Args:
        path: the file to (re)write; its folder must exist.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        # mkstemp makes the file owner-only; give it the mode a plain open() would
        # (the old file's mode, else 0666 less the umask).
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (see `atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """`obj` with every NaN or ±Infinity float replaced by `None` (JSON `null`).

    Args:
        obj: dicts, lists, tuples and scalars; other objects go through `default`.
        default: converts objects JSON does not know (as `json.dumps(default=...)`).
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v, default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, default) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if default is None:
        raise TypeError(f"not JSON serializable: {type(obj)}")
    return json_safe(default(obj), default)


def atomic_write_json(path: str | os.PathLike, obj: Any, default: Callable[[Any], Any] | None = None) -> None:
    """Write `obj` as indented JSON atomically; NaN and ±Infinity are written as `null`.

    Args:
        path: the target file.
        obj: the value to write.
        default: converts objects JSON does not know (numpy scalars, paths, ...).
    """
    text = json.dumps(json_safe(obj, default), indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # not supported by this file system
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_directory(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the complete folder `new` in the place of `target` (a folder, or missing).

    `new` must be on the same file system (a sibling). On Linux the two are swapped
    in one atomic step, so a reader sees the old folder or the new one, never a mix
    and never neither; elsewhere `target` is renamed aside, `new` renamed in, and
    the old one deleted. The old folder is deleted only after the new one is in place.

    Args:
        new: the finished replacement.
        target: the folder it replaces.
    """
    new, target = Path(new), Path(target)
    if not target.exists():
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new)  # now the old folder
    else:
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        os.rename(new, target)
        shutil.rmtree(old)
    _fsync_dir(target.parent)
