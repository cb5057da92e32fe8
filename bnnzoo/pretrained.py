"""Pretrained weights and their model cards.

Two kinds of weights, one interface (`create_model(name, weights=TAG)`):

- **Shipped artifacts**, `artifacts/<name>/<tag>/{weights.h5, card.json}` in the
  source tree, installed as the data package `bnnzoo._artifacts`. Each was made
  by a recipe in `recipes/`: `bnnzoo train --recipe recipes/<name>-<tag>.toml --out
  RUN` trains it (and never writes here), then `bnnzoo publish RUN`
  (`bnnzoo.zoo.publish_run`) copies the weights and writes the card from the run.
- **Remote weights**, e.g. larq-zoo's ImageNet weights (`weights="imagenet"`),
  fetched once over HTTPS into a cache (`~/.cache/bnnzoo`, or `$BNNZOO_CACHE_DIR`)
  and checked against the card's sha256 before use.

Either way the weights file's sha256 is compared with the card before loading;
a mismatch is refused with `WeightsIntegrityError`.

!!! example
    ```python
    import bnnzoo
    from bnnzoo import pretrained

    print(pretrained.list_pretrained("binarynet"))     # ['digits', 'fashion_mnist', ...]
    card = pretrained.get_card("binarynet", "fashion_mnist")
    model = bnnzoo.models.create_model("binarynet", weights="fashion_mnist")
    print(bnnzoo.zoo.evaluate_pretrained("binarynet", "digits")["test_accuracy"])  # the card's 0.9777
    ```
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import os
import re
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnzoo._atomic import atomic_path, atomic_write_bytes, atomic_write_json

__all__ = [
    "CACHE_ENV",
    "FAMILY_DEFAULT",
    "LARQ_ZOO_IMAGENET",
    "Card",
    "WeightsIntegrityError",
    "artifacts_dir",
    "cache_dir",
    "check_download_url",
    "check_safe_name",
    "fetch",
    "recipe_artifact",
    "recipe_record",
    "recipe_reference",
    "format_bytes",
    "format_card_line",
    "get_card",
    "inside_folder",
    "list_cards",
    "list_pretrained",
    "load_pretrained_weights",
    "register_remote_card",
    "sha256_file",
    "weights_path",
]

# A card's quantizers (and `create_model`'s defaults): "the family's own" (larq-zoo's
# choices for its families, `ste_sign` for bnnzoo's).
FAMILY_DEFAULT = "family_default"
CARD_FILE = "card.json"
# The file of a run directory that records the recipe it was trained from (`bnnzoo train --recipe`).
RECIPE_RECORD = "recipe.json"
WEIGHTS_FILE = "weights.h5"
CACHE_ENV = "BNNZOO_CACHE_DIR"
ARTIFACTS_ENV = "BNNZOO_ARTIFACTS_DIR"
# Where larq-zoo publishes its release files (larq_zoo.core.utils.download_pretrained_model).
LARQ_ZOO_RELEASES_ENV = "BNNZOO_LARQ_ZOO_URL"
LARQ_ZOO_RELEASES = "https://github.com/larq/zoo/releases/download"
_FETCH_TIMEOUT_S = 60

# Licence of the data each shipped artifact was trained on.
DATA_LICENSES = {
    "digits": "UCI ML hand-written digits (scikit-learn bundled copy), CC BY 4.0",
    "fashion_mnist": "Fashion-MNIST (Zalando Research), MIT",
    "imagenet": "ImageNet ILSVRC-2012, research and non-commercial use only",
}


class WeightsIntegrityError(ValueError):
    """A weights file whose sha256 does not match its model card."""


@dataclass(frozen=True)
class Card:
    """A model card: what a pretrained weights file is, how well it does, how it was made.

    `input_quantizer`/`kernel_quantizer` are what `create_model` passes to the family
    to rebuild the trained architecture (a registered name, a larq alias or a
    serialized quantizer config); `model_kwargs` are the family options.
    `url` is set for remote weights (fetched into the cache), `None` for shipped ones.
    """

    name: str
    tag: str
    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int
    test_accuracy: float
    params: int | None
    binary_params: int | None
    weight_memory_bytes: float | None
    float32_memory_bytes: float | None
    recipe: str | None
    sha256: str
    weights_file: str
    data_license: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    input_quantizer: Any = "ste_sign"
    kernel_quantizer: Any = "ste_sign"
    description: str = ""
    test_loss: float | None = None
    test_size: int | None = None
    top5_accuracy: float | None = None
    optimizer: str | None = None
    quantizer: str | None = None
    epochs: int | None = None
    train_config: dict[str, Any] | None = None
    url: str | None = None
    source: str = "bnnzoo"
    # Optional extras next to the weights (see `bnnzoo.zoo.publish_from_recipe`): the run's
    # per-epoch history and its plot, and the LCE export measured at publishing.
    history_file: str | None = None
    curves_file: str | None = None
    lce_export: dict[str, Any] | None = None
    # `bnnzoo.quantizers.binary_forward` of the published model (None: not recorded).
    binary_forward: bool | None = None

    @property
    def memory_ratio_vs_float32(self) -> float | None:
        if not self.weight_memory_bytes or not self.float32_memory_bytes:
            return None
        return self.weight_memory_bytes / self.float32_memory_bytes

    @property
    def shipped(self) -> bool:
        """Whether the weights file ships inside the package (else fetched from `url`)."""
        return self.url is None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["input_shape"] = list(self.input_shape)
        out["memory_ratio_vs_float32"] = self.memory_ratio_vs_float32
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Card":
        known = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            and f.name not in values
        )
        if missing:
            raise ValueError(f"model card is missing fields {missing}")
        kwargs = {k: v for k, v in values.items() if k in known}
        kwargs["input_shape"] = tuple(int(d) for d in kwargs["input_shape"])
        return cls(**kwargs)


# --------------------------------------------------------------------------- names and paths

# Model names, tags and file names: a letter or digit, then letters, digits, `_`, `.`, `-`.
# No path separators and no leading dot, so none of them can climb out of a folder.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Hosts plain http is allowed to (local test servers); anything else needs https.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Largest download accepted (larq-zoo's biggest ImageNet file is ~100 MiB).
MAX_DOWNLOAD_BYTES = 4 << 30


def check_safe_name(kind: str, value) -> str:
    """`value` unless it is unsafe as one path component; else `ValueError` naming `kind`.

    Args:
        kind: what the value is (`"model name"`, `"tag"`, `"filename"`), for the message.
        value: the name to check.
    """
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or ".." in value:
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


def recipe_artifact(recipe: dict[str, Any], model: str, dataset: str) -> tuple[str, str]:
    """The `(name, tag)` a recipe's `[artifact]` table publishes to.

    `name` defaults to the recipe's model, `tag` to its dataset. Raises `ValueError`
    for a name other than the model (the weights would not fit the family) or an
    unsafe name or tag, so `bnnzoo train --recipe` refuses it before training.

    Args:
        recipe: the recipe file's values (`bnnzoo.training.read_recipe`).
        model: the model the recipe (with any overrides) trains.
        dataset: the dataset it trains on.
    """
    artifact = recipe.get("artifact", {})
    if not isinstance(artifact, dict):
        raise ValueError(f"the recipe's artifact must be a table, got {artifact!r}")
    name, tag = artifact.get("name", model), artifact.get("tag", dataset)
    if name != model:
        raise ValueError(f"the recipe's artifact name {name!r} differs from its model {model!r}; "
                         f"set [artifact] name = {model!r} or leave it out")
    check_safe_name("artifact name", name)
    check_safe_name("artifact tag", tag)
    return name, tag


def recipe_reference(path: str | os.PathLike) -> str:
    """How a card names its recipe: relative to the source tree when inside it, else as given."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path(__file__).resolve().parent.parent).as_posix()
    except ValueError:
        return path.as_posix()


def recipe_record(path: str | os.PathLike, values: dict[str, Any]) -> dict[str, Any]:
    """What `bnnzoo train --recipe` records in its run (`RECIPE_RECORD`) for `bnnzoo publish`:
    the recipe's reference as a card names it (`path`) and the recipe's values (`recipe`)."""
    return {"path": recipe_reference(path), "recipe": values}


# --------------------------------------------------------------------------- locations


def artifacts_dir() -> Path:
    """The folder holding `<name>/<tag>/` artifacts.

    `$BNNZOO_ARTIFACTS_DIR` if set; else the installed `bnnzoo._artifacts` package
    (the repo's `artifacts/` in an editable install); else the source tree's `artifacts/`.
    """
    if os.environ.get(ARTIFACTS_ENV):
        return Path(os.environ[ARTIFACTS_ENV])
    try:
        path = Path(str(importlib.resources.files("bnnzoo._artifacts")))
        if path.is_dir():
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "artifacts"


def cache_dir() -> Path:
    """Where remote weights are cached: `$BNNZOO_CACHE_DIR` or `~/.cache/bnnzoo`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bnnzoo")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- cards

_REMOTE_CARDS: dict[tuple[str, str], Card] = {}


def register_remote_card(card: Card) -> Card:
    """Make remote weights (`card.url` set) available as `create_model(name, weights=tag)`."""
    if card.url is None:
        raise ValueError(f"register_remote_card needs a card with a url, got {card.name}/{card.tag}")
    for kind, value in (("model name", card.name), ("tag", card.tag), ("weights file", card.weights_file)):
        check_safe_name(kind, value)
    check_download_url(card.url)
    _REMOTE_CARDS[(card.name, card.tag)] = card
    return card


def _local_card(name: str, tag: str) -> Card | None:
    path = inside_folder(artifacts_dir(), name, tag, CARD_FILE)
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        card = Card.from_dict(values)
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"model card {path} is malformed: {' '.join(str(err).split())[:200]}") from None
    check_safe_name("weights file", card.weights_file)
    return card


def list_pretrained(name: str) -> list[str]:
    """Sorted tags of the pretrained weights of model family `name` (shipped and remote)."""
    check_safe_name("model name", name)
    tags = set()
    root = inside_folder(artifacts_dir(), name)
    if root.is_dir():
        tags |= {p.parent.name for p in root.glob(f"*/{CARD_FILE}") if _SAFE_NAME.fullmatch(p.parent.name)}
    _ensure_larq_zoo_cards()
    tags |= {tag for (n, tag) in _REMOTE_CARDS if n == name}
    return sorted(tags)


def list_cards(name: str) -> list[Card]:
    """The cards of every pretrained tag of `name`."""
    return [get_card(name, tag) for tag in list_pretrained(name)]


def get_card(name: str, tag: str) -> Card:
    """The card of `name`'s pretrained weights `tag`; unknown tags list the valid ones.

    `name` and `tag` must be safe path components (see `check_safe_name`); a card
    is only read from inside the artifacts folder.
    """
    check_safe_name("model name", name)
    check_safe_name("tag", tag)
    card = _local_card(name, tag)
    if card is None:
        _ensure_larq_zoo_cards()
        card = _REMOTE_CARDS.get((name, tag))
    if card is None:
        tags = list_pretrained(name)
        raise ValueError(
            f"No pretrained weights {tag!r} for model {name!r}. "
            f"Valid tags: {', '.join(tags) if tags else 'none (train one with bnnzoo train)'}"
        )
    return card


def format_bytes(n: float | None) -> str:
    """`n` bytes as KiB or MiB (`?` for `None`)."""
    if n is None:
        return "?"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    return f"{n / 1024:.1f} KiB"


def format_card_line(card: Card) -> str:
    """One line for `bnnzoo list`: tag, dataset, accuracy, binary-weight memory."""
    ratio = card.memory_ratio_vs_float32
    size = format_bytes(card.weight_memory_bytes)
    if ratio is not None:
        size += f" (1/{1 / ratio:.0f} of float32 {format_bytes(card.float32_memory_bytes)})"
    where = "" if card.shipped else "  [download]"
    return (f"{card.tag:22s} {card.dataset:14s} top-1 {100 * card.test_accuracy:6.2f} %  "
            f"weights {size}{where}")


# --------------------------------------------------------------------------- fetching


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


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


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to the same scheme, host and port as the first URL."""

    def __init__(self, url: str):
        super().__init__()
        self.origin = _origin(url)

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if _origin(newurl) != self.origin:
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
        with os.fdopen(fd, "wb") as out, opener.open(url, timeout=timeout) as response:
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
    model.load_weights(str(path))


# --------------------------------------------------------------------------- larq-zoo ImageNet

# larq-zoo's ImageNet releases as plain data (`larq_zoo_imagenet.json` beside this
# file, its `_about` says what each field is): bnnzoo family -> larq-zoo model function,
# release file and hash, and the published top-1/top-5, parameters and memory.
LARQ_ZOO_IMAGENET: dict[str, dict[str, Any]] = json.loads(
    Path(__file__).with_name("larq_zoo_imagenet.json").read_text(encoding="utf-8"))["releases"]
_LARQ_ZOO_LOADED = False


def _ensure_larq_zoo_cards() -> None:
    """Register a remote `imagenet` card for every family in `LARQ_ZOO_IMAGENET`."""
    global _LARQ_ZOO_LOADED
    if _LARQ_ZOO_LOADED:
        return
    _LARQ_ZOO_LOADED = True
    root = os.environ.get(LARQ_ZOO_RELEASES_ENV, LARQ_ZOO_RELEASES).rstrip("/")
    for name, release in LARQ_ZOO_IMAGENET.items():
        register_remote_card(Card(
            name=name,
            tag="imagenet",
            dataset="imagenet",
            input_shape=(224, 224, 3),
            num_classes=1000,
            test_accuracy=release["top1"],
            top5_accuracy=release["top5"],
            params=release["params"],
            binary_params=None,
            weight_memory_bytes=release["memory_bytes"],
            float32_memory_bytes=4.0 * release["params"],
            recipe=None,
            sha256=release["file_hash"],
            weights_file=release["file"],
            data_license=DATA_LICENSES["imagenet"],
            model_kwargs={},
            input_quantizer=FAMILY_DEFAULT,
            kernel_quantizer=FAMILY_DEFAULT,
            description=f"larq-zoo {release['function']} {release['version']} trained on ImageNet "
                        "(top-1/top-5 on the ILSVRC-2012 validation set, as published by larq-zoo).",
            url=f"{root}/{release['model']}-{release['version']}/{release['file']}",
            source="larq-zoo",
        ))
