"""One writer per directory: an advisory lock held for the whole of a run or a search.

`directory_lock(folder)` creates `folder` if needed and takes an exclusive
`fcntl.flock` on `folder/.bnnzoo.lock`, a file holding the holder's pid. A second
writer is refused at once with `DirectoryLockedError` (a `ValueError`, so the CLI
prints it as one `bnnzoo: error:` line) naming the holder's pid and the folder.
The kernel drops the lock when its holder exits, SIGKILL included, so a crashed
run never leaves a directory locked; the lock file itself stays, empty once
released (it is not part of the run and nothing reads it but this module).

Readers (`bnnzoo evaluate`, `bnnzoo export`) take no lock: writers replace files
and run directories atomically (`bnnzoo._atomic`).

This module imports nothing heavy (no TensorFlow).

!!! example
    ```python
    import tempfile
    from pathlib import Path
    from bnnzoo._runlock import directory_lock

    folder = Path(tempfile.mkdtemp()) / "run"
    with directory_lock(folder) as lock:
        assert lock.created and (folder / ".bnnzoo.lock").is_file()
    ```
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

__all__ = ["LOCK_FILE", "DirectoryLock", "DirectoryLockedError", "directory_lock"]

LOCK_FILE = ".bnnzoo.lock"


class DirectoryLockedError(ValueError):
    """Another process holds the lock of a run or tuning directory."""


@dataclass
class DirectoryLock:
    """A held lock: the folder, whether taking the lock created it, the lock file's fd."""

    folder: Path
    created: bool
    fd: int

    def holds_only(self, *names: str) -> bool:
        """Whether the folder holds nothing but the lock file and files among `names`."""
        try:
            return {p.name for p in self.folder.iterdir()} <= {LOCK_FILE, *names}
        except OSError:
            return False


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "an unknown process"


def _acquire(folder: Path, what: str) -> int:
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirectoryLockedError(
                f"{what} {folder} is in use by another bnnzoo process ({_holder(path)}); "
                "wait for it to finish or use another directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # The file may have been replaced (its folder swapped or removed) between the
        # open and the lock: then the lock is on a file nobody else will see; retry.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def directory_lock(folder: str | os.PathLike, what: str = "run directory") -> Iterator[DirectoryLock]:
    """Hold the exclusive writer lock of `folder` (created if missing) for the `with` body.

    Args:
        folder: the run or tuning directory.
        what: what the folder is, for the messages ("run directory", "tuning directory").

    Raises:
        DirectoryLockedError: another process holds the lock (message: its pid, the folder).
        OSError: the folder cannot be created or written; the message names it.
    """
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _acquire(folder, what)
    except OSError as err:
        raise type(err)(f"cannot write the {what} {folder}: {err.strerror or err}") from err
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield DirectoryLock(folder, created, fd)
    finally:
        try:
            os.ftruncate(fd, 0)  # released: the file names no holder (and is the same after every run)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
