"""Model cards as plain data: what a pretrained weights file is, how well it does, how it was made.

A shipped artifact's card is `card.json` beside its weights (written by
`bnnzoo publish`); larq-zoo's ImageNet releases are the table
`larq_zoo_imagenet.json` beside this file, turned into cards by
`larq_zoo_imagenet_cards`. This module reads no artifact folder and downloads
nothing: finding cards is `bnnzoo.pretrained.lookup`, fetching weights
`bnnzoo.pretrained.fetching`.

!!! example
    ```python
    from bnnzoo.pretrained.cards import Card, larq_zoo_imagenet_cards

    cards = {card.name: card for card in larq_zoo_imagenet_cards("https://example.org/releases")}
    quicknet = cards["quicknet"]
    assert (quicknet.tag, quicknet.num_classes, quicknet.shipped) == ("imagenet", 1000, False)
    assert quicknet.url.startswith("https://example.org/releases/quicknet-")
    assert Card.from_dict(quicknet.to_dict()) == quicknet
    ```
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnzoo.pretrained.safety import check_safe_name

__all__ = [
    "ARTIFACT_KEYS",
    "CARD_FILE",
    "DATA_LICENSES",
    "FAMILY_DEFAULT",
    "LARQ_ZOO_IMAGENET",
    "RECIPE_RECORD",
    "WEIGHTS_FILE",
    "Card",
    "larq_zoo_imagenet_cards",
    "recipe_artifact",
    "recipe_record",
    "recipe_reference",
]

# A card's quantizers (and `create_model`'s defaults): "the family's own" (larq-zoo's
# choices for its families, `ste_sign` for bnnzoo's).
FAMILY_DEFAULT = "family_default"
CARD_FILE = "card.json"
# The file of a run directory that records the recipe it was trained from (`bnnzoo train --recipe`).
RECIPE_RECORD = "recipe.json"
WEIGHTS_FILE = "weights.h5"
# The source tree (cards name their recipes relative to it).
_SOURCE_TREE = Path(__file__).resolve().parents[2]

# Licence of the data each shipped artifact was trained on.
DATA_LICENSES = {
    "digits": "UCI ML hand-written digits (scikit-learn bundled copy), CC BY 4.0",
    "fashion_mnist": "Fashion-MNIST (Zalando Research), MIT",
    "imagenet": "ImageNet ILSVRC-2012, research and non-commercial use only",
}


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
    # How it was trained (`bnnzoo.zoo.training_record`): the command that regenerates it,
    # the total train_seconds, and per run (teacher, stages) its epochs, seconds, load
    # and machine. None on cards published before it was recorded.
    training: dict[str, Any] | None = None
    # Which method won on validation in the reproduction benchmark and which one this
    # recipe uses (`bnnzoo.pretrained.evidence.method_selection`; `[artifact]
    # method_evidence`). None when the recipe names no report.
    method_selection: dict[str, Any] | None = None

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


# --------------------------------------------------------------------------- recipes

# The keys of a recipe's `[artifact]` table (what `bnnzoo publish` reads from it).
ARTIFACT_KEYS = ("name", "tag", "data_license", "lce_export", "method_evidence", "method_followed")


def recipe_artifact(recipe: dict[str, Any], model: str, dataset: str) -> tuple[str, str]:
    """The `(name, tag)` a recipe's `[artifact]` table publishes to.

    `name` defaults to the recipe's model, `tag` to its dataset. Raises `ValueError`
    for a name other than the model (the weights would not fit the family), an
    unsafe name or tag, or a key not in `ARTIFACT_KEYS`, so `bnnzoo train --recipe`
    refuses it before training. `method_evidence` names a reproduction report
    (`bnnzoo.pretrained.evidence.method_selection`) and `method_followed` the
    ranked arm whose method the recipe uses (default: the STE baseline).

    Args:
        recipe: the recipe file's values (`bnnzoo.training.read_recipe`).
        model: the model the recipe (with any overrides) trains.
        dataset: the dataset it trains on.
    """
    artifact = recipe.get("artifact", {})
    if not isinstance(artifact, dict):
        raise ValueError(f"the recipe's artifact must be a table, got {artifact!r}")
    unknown = sorted(set(artifact) - set(ARTIFACT_KEYS))
    if unknown:
        raise ValueError(f"the recipe's [artifact] has unknown keys {unknown}; "
                         f"allowed: {', '.join(ARTIFACT_KEYS)}")
    for key in ("method_evidence", "method_followed", "data_license"):
        if key in artifact and not isinstance(artifact[key], str):
            raise ValueError(f"the recipe's [artifact] {key} must be a string, got {artifact[key]!r}")
    if "method_followed" in artifact and "method_evidence" not in artifact:
        raise ValueError("the recipe's [artifact] method_followed needs method_evidence, the report "
                         "that ranks it (e.g. method_evidence = \"docs/benchmarks/reproduce.json\")")
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
        return path.resolve().relative_to(_SOURCE_TREE).as_posix()
    except ValueError:
        return path.as_posix()


def recipe_record(path: str | os.PathLike, values: dict[str, Any]) -> dict[str, Any]:
    """What `bnnzoo train --recipe` records in its run (`RECIPE_RECORD`) for `bnnzoo publish`:
    the recipe's reference as a card names it (`path`) and the recipe's values (`recipe`)."""
    return {"path": recipe_reference(path), "recipe": values}


# --------------------------------------------------------------------------- larq-zoo ImageNet

# larq-zoo's ImageNet releases as plain data (`larq_zoo_imagenet.json` beside this
# file, its `_about` says what each field is): bnnzoo family -> larq-zoo model function,
# release file and hash, and the published top-1/top-5, parameters and memory.
LARQ_ZOO_IMAGENET: dict[str, dict[str, Any]] = json.loads(
    Path(__file__).with_name("larq_zoo_imagenet.json").read_text(encoding="utf-8"))["releases"]


def larq_zoo_imagenet_cards(releases_url: str) -> list[Card]:
    """A remote `imagenet` card for every family in `LARQ_ZOO_IMAGENET`.

    Args:
        releases_url: where larq-zoo's release files are, without a trailing `/`
            (`bnnzoo.pretrained.lookup.LARQ_ZOO_RELEASES` unless overridden).

    !!! example
        ```python
        from bnnzoo.pretrained.cards import LARQ_ZOO_IMAGENET, larq_zoo_imagenet_cards

        cards = larq_zoo_imagenet_cards("https://mirror.example.org/larq")
        assert sorted(c.name for c in cards) == sorted(LARQ_ZOO_IMAGENET)
        assert all(c.url.startswith("https://mirror.example.org/larq/") for c in cards)
        ```
    """
    return [
        Card(
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
            url=f"{releases_url}/{release['model']}-{release['version']}/{release['file']}",
            source="larq-zoo",
        )
        for name, release in LARQ_ZOO_IMAGENET.items()
    ]
