"""Weights files on disk: sha256 checks, the download cache and loading into a model.

Remote weights are downloaded once into bnnzoo's one cache folder (`cache_dir`,
`$BNNZOO_CACHE`, shared with the datasets) and kept only if their sha256 matches;
every weights file, shipped or cached, is checked against its card again just
before `load_pretrained_weights` loads it.

!!! example
    ```python
    import hashlib
    from pathlib import Path
    from bnnzoo.pretrained import get_card
    from bnnzoo.pretrained.fetching import sha256_file, weights_path

    Path("w.bin").write_bytes(b"weights")
    assert sha256_file("w.bin") == hashlib.sha256(b"weights").hexdigest()
    card = get_card("binarynet_mlp", "digits")
    path = weights_path(card)  # shipped: inside the artifacts folder, nothing fetched
    assert path.name == card.weights_file and sha256_file(path) == card.sha256
    ```
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from bnnzoo.datasets_cache import CACHE_ENV, cache_root
from bnnzoo.pretrained.cards import CARD_FILE, Card
from bnnzoo.pretrained.lookup import artifacts_dir, get_card
from bnnzoo.pretrained.safety import check_download_url, check_safe_name, inside_folder, same_origin

__all__ = [
    "CACHE_ENV",
    "DEPRECATED_CACHE_ENV",
    "MAX_DOWNLOAD_BYTES",
    "WeightsIntegrityError",
    "cache_dir",
    "fetch",
    "load_pretrained_weights",
    "sha256_file",
    "weights_path",
]

# One cache variable for weights and datasets (`bnnzoo.datasets_cache.CACHE_ENV`, imported
# above); the weights cache's former name still works, with a DeprecationWarning.
DEPRECATED_CACHE_ENV = "BNNZOO_CACHE_DIR"
# Largest download accepted (larq-zoo's biggest ImageNet file is ~100 MiB).
MAX_DOWNLOAD_BYTES = 4 << 30
_FETCH_TIMEOUT_S = 60


class WeightsIntegrityError(ValueError):
    """A weights file whose sha256 does not match its model card."""


def cache_dir() -> Path:
    """Where remote weights are cached: bnnzoo's one cache folder, `$BNNZOO_CACHE`
    (else `$XDG_CACHE_HOME/bnnzoo`, else `~/.cache/bnnzoo`), which also holds the
    datasets (`bnnzoo.datasets_cache.cache_root`). `$BNNZOO_CACHE_DIR`, its former
    name for weights, is read when `$BNNZOO_CACHE` is unset, with a DeprecationWarning.
    """
    if not os.environ.get(CACHE_ENV) and os.environ.get(DEPRECATED_CACHE_ENV):
        warnings.warn(f"{DEPRECATED_CACHE_ENV} is deprecated; set {CACHE_ENV} instead (bnnzoo's one "
                      "cache folder, for weights and datasets)", DeprecationWarning, stacklevel=2)
        return Path(os.environ[DEPRECATED_CACHE_ENV]).expanduser()
    return cache_root()


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's contents, as 64 lowercase hex digits (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to the same scheme, host and port as the first URL."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not same_origin(newurl, self.url):
            fp.close()
            raise ValueError(f"refusing the redirect from {req.full_url} to {newurl}: downloads only "
                             "follow redirects on the same host")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, sha256: str, *, filename: str | None = None, cache: str | os.PathLike | None = None,
          timeout: float = _FETCH_TIMEOUT_S, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Download `url` into the cache unless a file with the right sha256 is there.

    The download goes to a temporary file that only replaces the cached one once its
    sha256 matches; a mismatch removes it and raises `WeightsIntegrityError`.
    Only `https://` is fetched (`http://` only from a loopback host, for local test
    servers), redirects to another host or scheme are refused, and the file name
    must be one plain path component, so nothing is written outside the cache.

    Args:
        url: where to download from.
        sha256: the expected sha256 of the file (64 hex digits).
        filename: name of the cached file; default: the URL's last path component.
        cache: the folder to cache in; default: `cache_dir()`.
        timeout: seconds to wait for the server.
        max_bytes: largest download accepted; a bigger one is aborted.
    """
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    check_download_url(url)
    name = filename if filename is not None else urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    check_safe_name("filename", name)
    folder = Path(cache) if cache is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = inside_folder(folder, name)
    if target.is_file() and sha256_file(target) == sha256:
        return target
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-")
    opener = urllib.request.build_opener(_SameOriginRedirects(url))
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = opener.open(url, timeout=timeout)
            except OSError as err:  # URLError, timeouts: "<urlopen error ...>" names no URL
                reason = " ".join(str(getattr(err, "reason", err)).split())
                raise ConnectionError(f"cannot download {url} ({reason}); offline? Fetch it on a machine "
                                      f"with internet and put it at {target} (sha256 {sha256})") from None
            with response:
                size = 0
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ValueError(f"download of {url} exceeds max_bytes={max_bytes}; aborted")
                    out.write(chunk)
        got = sha256_file(tmp)
        if got != sha256:
            raise WeightsIntegrityError(
                f"sha256 mismatch for {url}: expected {sha256}, got {got}. "
                "The download is corrupted or the file was replaced; it was not cached."
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def weights_path(card: Card) -> Path:
    """Local path of a card's weights file, fetched into the cache for remote cards."""
    for kind, value in (("model name", card.name), ("tag", card.tag), ("weights file", card.weights_file)):
        check_safe_name(kind, value)
    if card.shipped:
        return inside_folder(artifacts_dir(), card.name, card.tag, card.weights_file)
    return fetch(card.url, card.sha256, filename=card.weights_file,
                 cache=inside_folder(cache_dir(), card.name))


def load_pretrained_weights(model, name: str, tag: str) -> None:
    """Load `name`'s pretrained weights `tag` into `model` after checking their sha256."""
    card = get_card(name, tag)
    path = weights_path(card)
    if not path.is_file():
        raise FileNotFoundError(f"weights file of {name}/{tag} missing at {path}")
    got = sha256_file(path)
    if got != card.sha256:
        raise WeightsIntegrityError(
            f"refusing to load {path}: sha256 {got} does not match the card of {name}/{tag} "
            f"({card.sha256}). The file is corrupted or was replaced."
        )
    expected = tuple(card.input_shape)
    if tuple(model.input_shape[1:]) != expected:
        raise ValueError(
            f"{name}/{tag} weights are for inputs of shape {expected}, the model takes "
            f"{tuple(model.input_shape[1:])}"
        )
    try:
        model.load_weights(str(path))
    except (ValueError, OSError) as err:  # Keras's shape-mismatch text names no card
        card_file = inside_folder(artifacts_dir(), name, tag, CARD_FILE) if card.shipped else f"card {name}/{tag}"
        detail = " ".join(str(err).split())[:160]
        raise ValueError(f"the weights {path} do not fit the model built from {card_file} (model_kwargs "
                         f"{card.model_kwargs}): {detail}; the card was altered or belongs to other weights: "
                         "restore it (git checkout, or reinstall bnnzoo)") from None
