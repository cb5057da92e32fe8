"""Pretrained weights and their model cards.

Two kinds of weights, one interface (`create_model(name, weights=TAG)`):

- **Shipped artifacts**, `artifacts/<name>/<tag>/{weights.h5, card.json}` in the
  source tree, installed as the data package `bnnzoo._artifacts`. Each was made
  by a recipe in `recipes/`: `bnnzoo train --recipe recipes/<name>-<tag>.toml --out
  RUN` trains it (and never writes here), then `bnnzoo publish RUN`
  (`bnnzoo.zoo.publish_run`) copies the weights and writes the card from the run.
- **Remote weights**, e.g. larq-zoo's ImageNet weights (`weights="imagenet"`),
  fetched once over HTTPS into a cache (`~/.cache/bnnzoo`, or `$BNNZOO_CACHE`)
  and checked against the card's sha256 before use.

Either way the weights file's sha256 is compared with the card before loading;
a mismatch is refused with `WeightsIntegrityError`.

The package's modules, lowest first: `safety` (which names, paths and URLs are
used), `evidence` (what a card says about the method that won on validation,
from the reproduction benchmark's report), `cards` (the `Card` data, recipe references, larq-zoo's ImageNet table),
`lookup` (finding cards in the artifacts folder and among registered remote
cards) and `fetching` (sha256 checks, the download cache, loading weights into a
model). Everything public is importable from `bnnzoo.pretrained`. How a card
reads in `bnnzoo list` is the CLI's (`bnnzoo.cli.format_card_line`).

!!! example
    ```python
    import bnnzoo
    from bnnzoo import pretrained

    tags = pretrained.list_pretrained("binarynet")
    assert {"digits", "fashion_mnist"} <= set(tags)
    card = pretrained.get_card("binarynet", "digits")
    model = bnnzoo.models.create_model("binarynet", weights="digits")
    assert model.count_params() == card.params
    accuracy = bnnzoo.zoo.evaluate_pretrained("binarynet", "digits")["test_accuracy"]
    assert abs(accuracy - card.test_accuracy) <= 0.003  # the card's accuracy reproduces
    ```
"""

from __future__ import annotations

from bnnzoo.pretrained.cards import (
    ARTIFACT_KEYS,
    CARD_FILE,
    DATA_LICENSES,
    FAMILY_DEFAULT,
    LARQ_ZOO_IMAGENET,
    RECIPE_RECORD,
    WEIGHTS_FILE,
    Card,
    larq_zoo_imagenet_cards,
    recipe_artifact,
    recipe_record,
    recipe_reference,
)
from bnnzoo.pretrained.evidence import method_selection
from bnnzoo.pretrained.fetching import (
    CACHE_ENV,
    DEPRECATED_CACHE_ENV,
    MAX_DOWNLOAD_BYTES,
    WeightsIntegrityError,
    cache_dir,
    fetch,
    load_pretrained_weights,
    sha256_file,
    weights_path,
)
from bnnzoo.pretrained.lookup import (
    ARTIFACTS_ENV,
    LARQ_ZOO_RELEASES,
    LARQ_ZOO_RELEASES_ENV,
    artifacts_dir,
    get_card,
    list_cards,
    list_pretrained,
    register_remote_card,
)
from bnnzoo.pretrained.safety import check_download_url, check_safe_name, inside_folder, is_safe_name, same_origin

__all__ = [
    "ARTIFACTS_ENV",
    "ARTIFACT_KEYS",
    "CACHE_ENV",
    "CARD_FILE",
    "DATA_LICENSES",
    "DEPRECATED_CACHE_ENV",
    "FAMILY_DEFAULT",
    "LARQ_ZOO_IMAGENET",
    "LARQ_ZOO_RELEASES",
    "LARQ_ZOO_RELEASES_ENV",
    "MAX_DOWNLOAD_BYTES",
    "RECIPE_RECORD",
    "WEIGHTS_FILE",
    "Card",
    "WeightsIntegrityError",
    "artifacts_dir",
    "cache_dir",
    "check_download_url",
    "check_safe_name",
    "fetch",
    "get_card",
    "inside_folder",
    "is_safe_name",
    "larq_zoo_imagenet_cards",
    "list_cards",
    "list_pretrained",
    "load_pretrained_weights",
    "method_selection",
    "recipe_artifact",
    "recipe_record",
    "recipe_reference",
    "register_remote_card",
    "same_origin",
    "sha256_file",
    "weights_path",
]
