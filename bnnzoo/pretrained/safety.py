"""Which names, paths and URLs the pretrained code will use.

Model names, tags and file names from cards, recipes and callers become path
components under the artifacts folder or the cache, and card URLs are downloaded:
everything here refuses what could climb out of a folder or leave HTTPS. Standard
library only; the other `bnnzoo.pretrained` modules build on it.

!!! example
    ```python
    from pathlib import Path
    from bnnzoo.pretrained.safety import check_download_url, check_safe_name, inside_folder

    assert check_safe_name("tag", "fashion_mnist") == "fashion_mnist"
    assert inside_folder(Path("zoo"), "binarynet", "digits") == Path("zoo/binarynet/digits")
    for unsafe in ("../etc", ".hidden", "a/b"):
        try:
            check_safe_name("tag", unsafe)
        except ValueError as err:
            assert str(err).startswith(f"tag {unsafe!r} is not allowed")
        else:
            raise AssertionError(unsafe)
    assert check_download_url("https://example.org/w.h5") == "https://example.org/w.h5"
    try:
        check_download_url("http://example.org/w.h5")
    except ValueError as err:
        assert "downloads use https://" in str(err)
    ```
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

__all__ = ["check_download_url", "check_safe_name", "inside_folder", "is_safe_name", "same_origin"]

# Model names, tags and file names: a letter or digit, then letters, digits, `_`, `.`, `-`.
# No path separators and no leading dot, so none of them can climb out of a folder.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Hosts plain http is allowed to (local test servers); anything else needs https.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_safe_name(value) -> bool:
    """Whether `value` is usable as one path component (see `check_safe_name`).

    !!! example
        ```python
        from bnnzoo.pretrained.safety import is_safe_name

        assert is_safe_name("digits-bop2ndorder") and is_safe_name("weights.h5")
        assert not any(is_safe_name(v) for v in ("..", "a/b", ".cache", "", None, "x" * 129))
        ```
    """
    return isinstance(value, str) and bool(_SAFE_NAME.fullmatch(value)) and ".." not in value


def check_safe_name(kind: str, value) -> str:
    """`value` unless it is unsafe as one path component; else `ValueError` naming `kind`.

    Args:
        kind: what the value is (`"model name"`, `"tag"`, `"filename"`), for the message.
        value: the name to check.
    """
    if not is_safe_name(value):
        raise ValueError(f"{kind} {value!r} is not allowed: use 1-128 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit (no path separators, no '..')")
    return value


def inside_folder(root: Path, *parts: str) -> Path:
    """`root / parts`, or `ValueError` if it resolves (symlinks too) outside `root`."""
    path = root.joinpath(*parts)
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise ValueError(f"{path} resolves outside {root}; refusing to use it") from None
    return path


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def same_origin(url: str, other: str) -> bool:
    """Whether two URLs have the same scheme, host and port (a redirect may follow only those).

    !!! example
        ```python
        from bnnzoo.pretrained.safety import same_origin

        assert same_origin("https://github.com/a.h5", "HTTPS://GitHub.com/b/c.h5")
        assert not same_origin("https://github.com/a.h5", "https://example.org/a.h5")
        assert not same_origin("https://github.com/a.h5", "http://github.com/a.h5")
        ```
    """
    return _origin(url) == _origin(other)


def check_download_url(url: str) -> str:
    """`url` unless it is not `https://` (or `http://` to 127.0.0.1, localhost or ::1).

    Args:
        url: the address to download from.
    """
    try:
        scheme, host, _ = _origin(url) if isinstance(url, str) else ("", "", None)
    except ValueError:  # e.g. a non-numeric port
        scheme, host = "", ""
    if not host or not (scheme == "https" or (scheme == "http" and host in _LOOPBACK_HOSTS)):
        raise ValueError(f"url {url!r} is not allowed: downloads use https:// (plain http:// only to "
                         f"{', '.join(_LOOPBACK_HOSTS)})")
    return url
