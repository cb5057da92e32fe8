"""Finding model cards: shipped artifacts read safely from the artifacts folder, remote cards registered.

A shipped card is `<artifacts>/<name>/<tag>/card.json` (`artifacts_dir`); `name`
and `tag` must be safe path components and the card must resolve inside the
folder, so no caller-given name reads a file elsewhere. Remote cards (larq-zoo's
ImageNet weights, or any `register_remote_card`) are held in memory; a shipped card
wins over a remote one with the same name and tag.

!!! example
    ```python
    from bnnzoo.pretrained.lookup import get_card, list_pretrained

    tags = list_pretrained("binarynet")
    assert {"digits", "fashion_mnist"} <= set(tags) and tags == sorted(tags)
    card = get_card("binarynet", "fashion_mnist")
    assert card.shipped and card.input_shape == (28, 28, 1)
    assert get_card("quicknet", "imagenet").url.startswith("https://")
    try:
        get_card("binarynet", "cifar1000")
    except ValueError as err:
        assert "Valid tags: digits, fashion_mnist" in str(err)
    ```
"""

from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path

from bnnzoo.pretrained.cards import CARD_FILE, Card, larq_zoo_imagenet_cards
from bnnzoo.pretrained.safety import check_download_url, check_safe_name, inside_folder, is_safe_name

__all__ = [
    "ARTIFACTS_ENV",
    "LARQ_ZOO_RELEASES",
    "LARQ_ZOO_RELEASES_ENV",
    "artifacts_dir",
    "get_card",
    "list_cards",
    "list_pretrained",
    "register_remote_card",
]

ARTIFACTS_ENV = "BNNZOO_ARTIFACTS_DIR"
# Where larq-zoo publishes its release files (larq_zoo.core.utils.download_pretrained_model).
LARQ_ZOO_RELEASES_ENV = "BNNZOO_LARQ_ZOO_URL"
LARQ_ZOO_RELEASES = "https://github.com/larq/zoo/releases/download"

_REMOTE_CARDS: dict[tuple[str, str], Card] = {}
_LARQ_ZOO_LOADED = False


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
    return Path(__file__).resolve().parents[2] / "artifacts"


def register_remote_card(card: Card) -> Card:
    """Make remote weights (`card.url` set) available as `create_model(name, weights=tag)`."""
    if card.url is None:
        raise ValueError(f"register_remote_card needs a card with a url, got {card.name}/{card.tag}")
    for kind, value in (("model name", card.name), ("tag", card.tag), ("weights file", card.weights_file)):
        check_safe_name(kind, value)
    check_download_url(card.url)
    _REMOTE_CARDS[(card.name, card.tag)] = card
    return card


def _ensure_larq_zoo_cards() -> None:
    """Register larq-zoo's ImageNet cards once, at the first lookup (`$BNNZOO_LARQ_ZOO_URL` read then)."""
    global _LARQ_ZOO_LOADED
    if _LARQ_ZOO_LOADED:
        return
    _LARQ_ZOO_LOADED = True
    for card in larq_zoo_imagenet_cards(os.environ.get(LARQ_ZOO_RELEASES_ENV, LARQ_ZOO_RELEASES).rstrip("/")):
        register_remote_card(card)


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
        tags |= {p.parent.name for p in root.glob(f"*/{CARD_FILE}") if is_safe_name(p.parent.name)}
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
