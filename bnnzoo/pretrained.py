"""Pretrained weights and their model cards.

Two kinds of weights, one interface (`create_model(name, weights=TAG)`):

- **Shipped artifacts**, `models/<name>/<tag>/{weights.h5, card.json}` in the
  source tree, installed as the data package `bnnzoo._artifacts`. Each was made
  by a recipe in `training/` (`bnnzoo train --recipe training/<name>-<tag>.toml`),
  which trains through `bnnzoo.training.train` and then calls
  `publish_from_recipe` to copy the weights and write the card.
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
    print(pretrained.evaluate_pretrained("binarynet", "fashion_mnist")["test_accuracy"])
    ```
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.resources
import inspect
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
    "Card",
    "WeightsIntegrityError",
    "artifacts_dir",
    "cache_dir",
    "check_download_url",
    "check_safe_name",
    "copy_training_curves",
    "evaluate_pretrained",
    "fetch",
    "format_card_line",
    "get_card",
    "list_cards",
    "list_pretrained",
    "load_pretrained_weights",
    "measure_lce_export",
    "publish_from_recipe",
    "register_remote_card",
    "sha256_file",
    "weights_path",
    "zoo_table_markdown",
]

CARD_FILE = "card.json"
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
    # Optional extras next to the weights (see `publish_from_recipe`): the run's
    # per-epoch history and its plot, and the LCE export measured at publishing.
    history_file: str | None = None
    curves_file: str | None = None
    lce_export: dict[str, Any] | None = None

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


def _inside(root: Path, *parts: str) -> Path:
    """`root / parts`, or `ValueError` if it resolves (symlinks too) outside `root`."""
    path = root.joinpath(*parts)
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise ValueError(f"{path} resolves outside {root}; refusing to use it") from None
    return path


# --------------------------------------------------------------------------- locations


def artifacts_dir() -> Path:
    """The folder holding `<name>/<tag>/` artifacts.

    `$BNNZOO_ARTIFACTS_DIR` if set; else the installed `bnnzoo._artifacts` package
    (the repo's `models/` in an editable install); else the source tree's `models/`.
    """
    if os.environ.get(ARTIFACTS_ENV):
        return Path(os.environ[ARTIFACTS_ENV])
    try:
        path = Path(str(importlib.resources.files("bnnzoo._artifacts")))
        if path.is_dir():
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "models"


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
    path = _inside(artifacts_dir(), name, tag, CARD_FILE)
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
    root = _inside(artifacts_dir(), name)
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


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    return f"{n / 1024:.1f} KiB"


def format_card_line(card: Card) -> str:
    """One line for `bnnzoo list`: tag, dataset, accuracy, binary-weight memory."""
    ratio = card.memory_ratio_vs_float32
    size = _fmt_bytes(card.weight_memory_bytes)
    if ratio is not None:
        size += f" (1/{1 / ratio:.0f} of float32 {_fmt_bytes(card.float32_memory_bytes)})"
    where = "" if card.shipped else "  [download]"
    return (f"{card.tag:22s} {card.dataset:14s} top-1 {100 * card.test_accuracy:6.2f} %  "
            f"weights {size}{where}")


def zoo_table_markdown() -> str:
    """The zoo as a Markdown table (families and every pretrained tag), for the docs."""
    from bnnzoo.models import get_model_spec, list_models

    rows = [
        "| model | weights | dataset | input | top-1 | params | binary params | weight memory | vs float32 | recipe |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in list_models():
        spec = get_model_spec(name)
        cards = list_cards(name)
        if not cards:
            shape = "x".join(map(str, spec.default_input_shape))
            rows.append(f"| `{name}` | – | – | {shape} (min {spec.min_input_size} px) | – | – | – | – | – | – |")
        for card in cards:
            ratio = card.memory_ratio_vs_float32
            recipe = f"`{card.recipe}`" if card.recipe else f"[{card.source}]({card.url})"
            rows.append(
                f"| `{name}` | `{card.tag}` | {card.dataset} | {'x'.join(map(str, card.input_shape))} "
                f"| {100 * card.test_accuracy:.2f} % | {card.params if card.params is not None else '?'} "
                f"| {card.binary_params if card.binary_params is not None else '?'} "
                f"| {_fmt_bytes(card.weight_memory_bytes)} "
                f"| {f'1/{1 / ratio:.1f}' if ratio else '?'} | {recipe} |"
            )
    return "\n".join(rows) + "\n"


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
    target = _inside(folder, name)
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
        return _inside(artifacts_dir(), card.name, card.tag, card.weights_file)
    return fetch(card.url, card.sha256, filename=card.weights_file,
                 cache=_inside(cache_dir(), card.name))


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


def evaluate_pretrained(name: str, tag: str, dataset: str | None = None, data_dir: str | None = None,
                        batch_size: int = 256) -> dict[str, Any]:
    """Test accuracy of `name`'s pretrained weights `tag` on the card's (or another) dataset.

    Returns the same keys as `bnnzoo.training.evaluate`.
    """
    from bnnzoo import training
    from bnnzoo.models import create_model

    card = get_card(name, tag)
    model = create_model(name, weights=tag)
    return training.evaluate(model, dataset or card.dataset, batch_size=batch_size, data_dir=data_dir)


# --------------------------------------------------------------------------- publishing


def _quantizer_spec(identifier) -> Any:
    """A JSON-able description of a trained layer's quantizer (name, alias or config)."""
    import larq as lq

    if identifier is None or isinstance(identifier, str):
        return identifier
    spec = lq.quantizers.serialize(identifier)
    if not isinstance(spec, dict):  # a plain function: its registered name
        return spec
    config = {k: v for k, v in spec.get("config", {}).items() if k != "name"}
    return {"class_name": spec["class_name"], "config": config}


def _trained_quantizers(model) -> tuple[Any, Any]:
    """(input, kernel) quantizer of the first layer that binarizes its inputs."""
    for layer in model.layers:
        iq = getattr(layer, "input_quantizer", None)
        if iq is not None:
            return _quantizer_spec(iq), _quantizer_spec(getattr(layer, "kernel_quantizer", None))
    raise ValueError(f"model {model.name} has no layer with an input quantizer")


HISTORY_FILE = "history.json"
CURVES_FILE = "curves.png"


def copy_training_curves(run_dir: str | os.PathLike, folder: str | os.PathLike) -> dict[str, str]:
    """Copy a run's `history.json` and `curves.png` (where present) into an artifact folder.

    Args:
        run_dir: the run directory written by `bnnzoo.training.train`.
        folder: the artifact folder (`models/<name>/<tag>/`).

    Returns:
        The card fields naming the copied files (`history_file`, `curves_file`).
    """
    found = {}
    for key, filename in (("history_file", HISTORY_FILE), ("curves_file", CURVES_FILE)):
        source = Path(run_dir) / filename
        if source.is_file():
            atomic_write_bytes(Path(folder) / filename, source.read_bytes())
            found[key] = filename
    return found


def measure_lce_export(model, dataset: str, data_dir: str | None = None) -> dict[str, Any]:
    """Convert `model` with LCE and check it on all of `dataset`'s test images, for a card.

    Args:
        model: the trained Keras model.
        dataset: the dataset whose test images check the flatbuffer.
        data_dir: folder with the dataset files, if not the default.

    Returns:
        `file_bytes`, `bits_per_weight`, `test_images`, `top1_agreement`, `max_abs_diff`,
        `ops` and the `larq_compute_engine` version; or `error` when the export fails
        or disagrees with Keras (the card is still written).
    """
    import larq_compute_engine

    from bnnzoo.export import ExportError, export_model

    summary: dict[str, Any] = {"format": "lce", "larq_compute_engine": larq_compute_engine.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report = export_model(model, "lce", Path(tmp) / "model.tflite", dataset=dataset,
                                  data_dir=data_dir, latency_repeats=0)
        except ExportError as err:
            return {**summary, "error": " ".join(str(err).split())[:500]}
    keys = ("file_bytes", "bits_per_weight", "test_images", "top1_agreement", "max_abs_diff", "ops")
    return {**summary, **{k: getattr(report, k) for k in keys}}


def publish_from_recipe(recipe_path: str | os.PathLike, run_dir: str | os.PathLike,
                        destination: str | os.PathLike | None = None) -> Card:
    """Turn a finished run of a recipe into `models/<name>/<tag>/{weights.h5, card.json}`.

    The recipe's `[artifact]` table names the artifact (`name` defaults to the
    recipe's model, `tag` to its dataset) and may give `data_license`; its
    top-level `description` goes on the card. Called by `bnnzoo train --recipe`.
    The run's `history.json`/`curves.png` are copied next to the weights; with
    `lce_export = true` in `[artifact]` the card also records the LCE flatbuffer's
    size and its agreement with Keras on the whole test set (`measure_lce_export`).
    """
    from bnnzoo import training

    recipe_path = Path(recipe_path)
    recipe = training.read_recipe(recipe_path)
    config = training.TrainConfig.from_file(recipe_path)
    artifact = dict(recipe.get("artifact", {}))
    name = artifact.get("name", config.model)
    tag = artifact.get("tag", config.dataset)
    if name != config.model:
        raise ValueError(f"artifact name {name!r} differs from the recipe's model {config.model!r}")
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = training.load_model(run_dir)
    check_safe_name("artifact name", name)
    check_safe_name("artifact tag", tag)
    folder = _inside(Path(destination) if destination is not None else artifacts_dir(), name, tag)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    with atomic_path(weights) as tmp:
        model.save_weights(str(tmp))
    input_q, kernel_q = _trained_quantizers(model)
    try:
        recipe_ref = recipe_path.resolve().relative_to(Path(__file__).resolve().parent.parent).as_posix()
    except ValueError:
        recipe_ref = recipe_path.as_posix()
    card = Card(
        name=name,
        tag=tag,
        dataset=config.dataset,
        input_shape=tuple(metrics["input_shape"]),
        num_classes=int(metrics["num_classes"]),
        test_accuracy=float(metrics["test_accuracy"]),
        test_loss=float(metrics["test_loss"]),
        test_size=int(metrics["test_size"]),
        params=int(metrics["params"]),
        binary_params=int(metrics["binary_params"]),
        weight_memory_bytes=float(metrics["weight_memory_bytes"]),
        float32_memory_bytes=float(metrics["float32_memory_bytes"]),
        recipe=recipe_ref,
        sha256=sha256_file(weights),
        weights_file=WEIGHTS_FILE,
        data_license=artifact.get("data_license", DATA_LICENSES.get(config.dataset, "see the dataset's source")),
        model_kwargs=dict(config.model_kwargs),
        input_quantizer=input_q,
        kernel_quantizer=kernel_q,
        description=str(recipe.get("description", "")),
        optimizer=config.optimizer,
        quantizer=config.quantizer,
        epochs=config.epochs,
        train_config=config.to_dict(),
        lce_export=measure_lce_export(model, config.dataset, config.data_dir) if artifact.get("lce_export") else None,
        **copy_training_curves(run_dir, folder),
    )
    atomic_write_json(folder / CARD_FILE, card.to_dict())
    print(f"published {name}/{tag}: top-1 {100 * card.test_accuracy:.2f} %, "
          f"sha256 {card.sha256[:12]}... -> {folder}")
    return card


# --------------------------------------------------------------------------- larq-zoo ImageNet

# bnnzoo family -> (larq-zoo factory import path, top-level function with the
# metrics table in its docstring). Release file names and sha256 are read from
# the factory's own source, so they stay those of the installed larq-zoo.
LARQ_ZOO_FAMILIES = {
    "birealnet18": ("larq_zoo.literature.birealnet:BiRealNetFactory", "BiRealNet"),
    "binary_resnet_e18": ("larq_zoo.literature.resnet_e:BinaryResNetE18Factory", "BinaryResNetE18"),
    "xnornet": ("larq_zoo.literature.xnornet:XNORNetFactory", "XNORNet"),
    "binary_alexnet": ("larq_zoo.literature.binary_alex_net:BinaryAlexNetFactory", "BinaryAlexNet"),
    "dorefanet": ("larq_zoo.literature.dorefanet:DoReFaNetFactory", "DoReFaNet"),
    "binary_densenet28": ("larq_zoo.literature.densenet:BinaryDenseNet28Factory", "BinaryDenseNet28"),
    "quicknet": ("larq_zoo.sota.quicknet:QuickNetFactory", "QuickNet"),
    "quicknet_small": ("larq_zoo.sota.quicknet:QuickNetSmallFactory", "QuickNetSmall"),
    "quicknet_large": ("larq_zoo.sota.quicknet:QuickNetLargeFactory", "QuickNetLarge"),
}
_LARQ_ZOO_LOADED = False


def _import(path: str):
    import importlib

    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def larq_zoo_release(factory_cls) -> dict[str, str]:
    """`{model, version, file, file_hash}` of a larq-zoo factory's top-included ImageNet weights.

    Read from the `download_pretrained_model(...)` call in the factory's source
    (or a parent's), the one whose file is not the `_notop` variant.
    """
    for cls in inspect.getmro(factory_cls):
        if not cls.__module__.startswith("larq_zoo"):
            continue
        try:
            tree = ast.parse(inspect.getsource(cls).strip())
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                    == "download_pretrained_model"):
                continue
            values = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
            if {"model", "version", "file", "file_hash"} <= set(values) and "_notop" not in values["file"]:
                return values
    raise ValueError(f"no ImageNet release found in the source of {factory_cls.__name__}")


def _larq_zoo_metrics(function) -> dict[str, float]:
    """Top-1/top-5, parameters and memory from a larq-zoo model's docstring table."""
    for line in (function.__doc__ or "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].endswith("%") and cells[1].endswith("%"):
            memory = cells[3].split()
            # larq (and so larq-zoo's tables) counts 1 kB = 1024 bytes.
            scale = {"MB": 1 << 20, "MiB": 1 << 20, "KB": 1 << 10, "kB": 1 << 10}.get(memory[-1], 1)
            return {
                "top1": float(cells[0].rstrip("% ").strip()) / 100,
                "top5": float(cells[1].rstrip("% ").strip()) / 100,
                "params": int(cells[2].replace(" ", "").replace(",", "")),
                "memory_bytes": float(memory[0]) * scale,
            }
    return {}


def _ensure_larq_zoo_cards() -> None:
    """Register a remote `imagenet` card for every family larq-zoo has weights for."""
    global _LARQ_ZOO_LOADED
    if _LARQ_ZOO_LOADED:
        return
    _LARQ_ZOO_LOADED = True
    root = os.environ.get(LARQ_ZOO_RELEASES_ENV, LARQ_ZOO_RELEASES).rstrip("/")
    for name, (factory_path, function_name) in LARQ_ZOO_FAMILIES.items():
        factory_cls = _import(factory_path)
        release = larq_zoo_release(factory_cls)
        function = getattr(inspect.getmodule(factory_cls), function_name)
        metrics = _larq_zoo_metrics(function)
        params = metrics.get("params")
        register_remote_card(Card(
            name=name,
            tag="imagenet",
            dataset="imagenet",
            input_shape=(224, 224, 3),
            num_classes=1000,
            test_accuracy=metrics.get("top1", float("nan")),
            top5_accuracy=metrics.get("top5"),
            params=params,
            binary_params=None,
            weight_memory_bytes=metrics.get("memory_bytes"),
            float32_memory_bytes=4.0 * params if params else None,
            recipe=None,
            sha256=release["file_hash"],
            weights_file=release["file"],
            data_license=DATA_LICENSES["imagenet"],
            model_kwargs={},
            input_quantizer="family_default",
            kernel_quantizer="family_default",
            description=f"larq-zoo {function_name} {release['version']} trained on ImageNet "
                        "(top-1/top-5 on the ILSVRC-2012 validation set, as published by larq-zoo).",
            url=f"{root}/{release['model']}-{release['version']}/{release['file']}",
            source="larq-zoo",
        ))
