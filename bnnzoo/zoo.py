"""The zoo's workflows above the models: evaluate a pretrained artifact, publish one
from a recipe's finished run, and the zoo table of the docs.

`bnnzoo.pretrained` holds the cards and weights as plain data (it imports nothing
from bnnzoo's models or training); this module joins them with `bnnzoo.models`,
`bnnzoo.training` and `bnnzoo.export`. Training never publishes: `bnnzoo train
--recipe R --out RUN` records the recipe in the run (`recipe.json`) and `bnnzoo
publish RUN` (`publish_run`) turns the finished run into an artifact.

!!! example
    ```python
    import bnnzoo
    from bnnzoo import zoo

    print(zoo.evaluate_pretrained("binarynet_mlp", "digits")["test_accuracy"])
    print(zoo.zoo_table_markdown().splitlines()[0])
    ```
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import larq as lq

from bnnzoo import export as _export
from bnnzoo import models as _models
from bnnzoo import pretrained as _pretrained
from bnnzoo import training as _training
from bnnzoo import quantizers as _quantizers
from bnnzoo._atomic import atomic_path, atomic_write_bytes, atomic_write_json, replace_directory
from bnnzoo.cli_support import format_bytes

__all__ = [
    "copy_training_curves",
    "evaluate_pretrained",
    "measure_lce_export",
    "publish_from_recipe",
    "publish_run",
    "training_record",
    "zoo_table_markdown",
]


def evaluate_pretrained(name: str, tag: str, dataset: str | None = None, data_dir: str | None = None,
                        batch_size: int = 256) -> dict[str, Any]:
    """Test accuracy of `name`'s pretrained weights `tag` on the card's (or another) dataset.

    Returns the same keys as `bnnzoo.training.evaluate`.
    """
    card = _pretrained.get_card(name, tag)
    model = _models.create_model(name, weights=tag)
    return _training.evaluate(model, dataset or card.dataset, batch_size=batch_size, data_dir=data_dir)


def zoo_table_markdown() -> str:
    """The zoo as a Markdown table (families and every pretrained tag), for the docs."""
    rows = [
        "| model | weights | dataset | input | top-1 | params | binary params | weight memory | vs float32 | recipe |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in _models.list_models():
        spec = _models.get_model_spec(name)
        cards = _pretrained.list_cards(name)
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
                f"| {format_bytes(card.weight_memory_bytes)} "
                f"| {f'1/{1 / ratio:.1f}' if ratio else '?'} | {recipe} |"
            )
    return "\n".join(rows) + "\n"




def _quantizer_spec(identifier) -> Any:
    """A JSON-able description of a trained layer's quantizer (name, alias or config)."""
    if identifier is None or isinstance(identifier, str):
        return identifier
    with _quantizers.nonbinary_expected():  # the card records it; `binary_forward` labels the run
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
        folder: the artifact folder (`artifacts/<name>/<tag>/`).

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


def training_record(recipe: dict[str, Any], recipe_ref: str, run_dir: str | os.PathLike,
                    folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """How a recipe's artifact was trained, for its card's `training` field.

    One entry in `parts` per run the recipe trained: the teacher run a distilled
    stage learned from (where it is a run directory), then each stage (or the one
    run), each with its epochs, `train_seconds` (the sum of its per-epoch seconds,
    resumed epochs included), its per-epoch load summary and the machine it ran on,
    from its `metrics.json`. `command` regenerates the artifact; `train_seconds` is
    the total (None when a part did not record its seconds). With `folder`, every
    part's `history.json` but the final one is copied there as `history-<part>.json`
    (the final run's is `history.json`, `copy_training_curves`), and a staged
    recipe's `curves.png` is redrawn over all its stages.

    !!! example
        ```python
        import tempfile
        from bnnzoo import zoo
        from bnnzoo.training import TrainConfig, train

        out = tempfile.mkdtemp() + "/run"
        train(TrainConfig(model="binarynet_mlp", dataset="digits", epochs=1, model_kwargs={"units": 8}),
              out=out, verbose=0)
        record = zoo.training_record({"model": "binarynet_mlp"}, "recipes/x.toml", out)
        assert record["command"] == "recipes/run_recipes.sh recipes/x.toml"
        assert [p["part"] for p in record["parts"]] == ["run"] and record["train_seconds"] > 0
        ```
    """
    run_dir = Path(run_dir)
    if _training.STAGES_KEY in recipe:
        runs = [(f"stage-{k}", _training.stage_dir(run_dir, k)) for k in range(1, len(recipe[_training.STAGES_KEY]) + 1)]
    else:
        runs = [("run", run_dir)]
    teachers = []
    for _, path in runs:
        record = _read_json_object(path / _training.TEACHER_RECORD)
        source = record.get("source")
        if record.get("kind") == "run" and source and source not in [str(t) for _, t in teachers]:
            teachers.append(("teacher" if not teachers else f"teacher-{len(teachers) + 1}", Path(source)))
    parts = []
    for name, path in teachers + runs:
        metrics = _read_json_object(path / "metrics.json")
        history = _read_json_object(path / HISTORY_FILE)
        parts.append({
            "part": name,
            "run": str(path),
            "epochs": len(history.get("loss", [])),
            "test_accuracy": metrics.get("test_accuracy"),
            "train_seconds": metrics.get("train_seconds"),
            "load_1min": metrics.get("load_1min"),
            "machine": metrics.get("machine"),
        })
        if folder is not None and (name, path) != runs[-1] and (path / HISTORY_FILE).is_file():
            parts[-1]["history_file"] = f"history-{name}.json"
            atomic_write_bytes(Path(folder) / parts[-1]["history_file"], (path / HISTORY_FILE).read_bytes())
    if folder is not None and len(runs) > 1:
        histories = [(name, _read_json_object(path / HISTORY_FILE)) for name, path in runs]
        with atomic_path(Path(folder) / CURVES_FILE) as tmp:
            _training.plot_curves(histories, tmp, f"{recipe.get('model')} on {recipe.get('dataset')}")
    seconds = [p["train_seconds"] for p in parts]
    return {
        "command": f"recipes/run_recipes.sh {recipe_ref}",
        "train_seconds": None if any(v is None for v in seconds) else round(sum(seconds), 1),
        "parts": parts,
    }


def _read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; {} when the file is missing or holds something else."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def measure_lce_export(model, dataset: str, data_dir: str | None = None, atol: float = 1e-4) -> dict[str, Any]:
    """Convert `model` with LCE and check it on all of `dataset`'s test images, for a card.

    Args:
        model: the trained Keras model.
        dataset: the dataset whose test images check the flatbuffer.
        data_dir: folder with the dataset files, if not the default.
        atol: largest allowed |softmax output difference| (top-1 must agree on every image).

    Returns:
        `file_bytes`, `bits_per_weight`, `test_images`, `top1_agreement`, `max_abs_diff`,
        `ops` and the `larq_compute_engine` version; or `error` when the export fails
        or disagrees with Keras (the card is still written).

    Raises:
        LceUnavailableError: larq-compute-engine is not installed on this stack (one
            line naming the stacks that have it).
    """
    larq_compute_engine = _export.require_lce("the card's LCE measurement (lce_export = true)")

    summary: dict[str, Any] = {"format": "lce", "larq_compute_engine": larq_compute_engine.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report = _export.export_model(model, "lce", Path(tmp) / "model.tflite", dataset=dataset,
                                  data_dir=data_dir, latency_repeats=0, atol=atol)
        except _export.ExportError as err:
            return {**summary, "error": " ".join(str(err).split())[:500]}
    keys = ("file_bytes", "bits_per_weight", "test_images", "top1_agreement", "max_abs_diff", "ops")
    return {**summary, **{k: getattr(report, k) for k in keys}}


def publish_run(run_dir: str | os.PathLike, destination: str | os.PathLike | None = None, *,
                force: bool = False) -> _pretrained.Card:
    """Publish a finished run of a recipe (`bnnzoo publish RUN_DIR`) as `<name>/<tag>/` artifacts.

    The recipe is the one recorded in the run (`recipe.json`, written by `bnnzoo train
    --recipe`); see `publish_from_recipe` for what is written and refused. The run of
    a multi-stage recipe (`[[stages]]`) is published from its last stage: give the
    folder of the stages (`--out` of `bnnzoo train`), not a stage's folder.

    Args:
        run_dir: the run directory.
        destination: the artifacts folder (default `bnnzoo.pretrained.artifacts_dir()`,
            i.e. `$BNNZOO_ARTIFACTS_DIR` or the installed artifacts).
        force: replace an existing artifact even with a worse or different run.
    """
    run_dir = Path(run_dir)
    path = run_dir / _pretrained.RECIPE_RECORD
    if not path.is_file() and run_dir.name.startswith("stage-") \
            and (run_dir.parent / _pretrained.RECIPE_RECORD).is_file():
        raise ValueError(f"{run_dir} is one stage of a multi-stage recipe run; publish the run itself: "
                         f"bnnzoo publish {run_dir.parent} (its last stage is the result)")
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} records no recipe ({_pretrained.RECIPE_RECORD}): publish a run trained with "
                                f"bnnzoo train --recipe RECIPE --out {run_dir}")
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not isinstance(record.get("recipe"), dict):
            raise ValueError("not an object with a 'recipe' table")
    except ValueError as err:
        raise ValueError(f"{path} is not a valid recipe record ({' '.join(str(err).split())[:200]})") from None
    return _publish(record["recipe"], str(record.get("path", path)), run_dir, destination, force)


def publish_from_recipe(recipe_path: str | os.PathLike, run_dir: str | os.PathLike,
                        destination: str | os.PathLike | None = None, *,
                        force: bool = False) -> _pretrained.Card:
    """Turn a finished run of a recipe into `<destination>/<name>/<tag>/{weights.h5, card.json}`.

    The recipe's `[artifact]` table names the artifact (`name` defaults to the
    recipe's model, `tag` to its dataset) and may give `data_license`; its
    top-level `description` goes on the card. The card describes the run as it was
    run (its `config.json` and `metrics.json`: epochs, test accuracy,
    `binary_forward`). The run's `history.json`/`curves.png` are copied next to the
    weights; with `lce_export = true` in `[artifact]` the card also records the LCE
    flatbuffer's size and its agreement with Keras on the whole test set
    (`measure_lce_export`); with `method_evidence = "docs/benchmarks/reproduce.json"`
    it records which method won on that report's validation and which one the
    recipe follows (`Card.method_selection`, `bnnzoo.pretrained.method_selection`).
    For a multi-stage recipe, `run_dir` is the folder of
    its stages and the last stage is published (its config compared with the
    recipe's last stage; `init_from`, the previous stage's folder, is not compared
    unless the recipe sets it).

    Refused with a one-line `ValueError` unless `force`: a run whose config differs
    from the recipe's (e.g. `--epochs 1`), or one that would replace an artifact
    with a lower test accuracy, another recipe or another config. The new folder
    is written beside the old one and swapped in complete.

    Args:
        recipe_path: the recipe file.
        run_dir: its finished run directory.
        destination: the artifacts folder (default `bnnzoo.pretrained.artifacts_dir()`).
        force: publish despite the refusals above.
    """
    recipe_path = Path(recipe_path)
    return _publish(_training.read_recipe(recipe_path), _pretrained.recipe_reference(recipe_path),
                    run_dir, destination, force)


def _read_run(run_dir: Path) -> tuple[_training.TrainConfig, dict[str, Any]]:
    """The config and metrics of a finished run directory; `ValueError` naming what is missing."""
    for name in ("config.json", "metrics.json", _training.MODEL_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir} is not a finished run (no {name}); train it to the end first")
    if (run_dir / "checkpoints").exists():
        raise ValueError(f"{run_dir} is an unfinished run (it has checkpoints/); train it to the end first")
    values = []
    for name in ("config.json", "metrics.json"):
        try:
            values.append(json.loads((run_dir / name).read_text()))
            if not isinstance(values[-1], dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            raise ValueError(f"{run_dir / name} is not valid ({' '.join(str(err).split())[:200]})") from None
    return _training.TrainConfig.from_dict(values[0]), values[1]


def _differences(previous: dict[str, Any], config: _training.TrainConfig, ignore=()) -> list[str]:
    # data_dir is where this machine keeps the data, not part of the recipe.
    return [k for k in _training._config_differences(previous, config) if k not in ("data_dir", *ignore)]


def _recipe_run(recipe: dict[str, Any], run_dir: Path) -> tuple[Path, _training.TrainConfig, tuple[str, ...]]:
    """(the run directory of the recipe's result, the recipe's config of it, the config
    keys not compared): a staged recipe's is its last stage's."""
    if _training.STAGES_KEY not in recipe:
        config = _training.TrainConfig.from_dict(
            {k: v for k, v in recipe.items() if k not in _training.RECIPE_EXTRA_KEYS})
        return run_dir, config, ()
    if (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} holds a single run, but its recipe has [[stages]]; publish the folder "
                         "that bnnzoo train --recipe ... --out wrote the stages into")
    config = _training.stage_configs(recipe)[-1]
    # The chain's init_from names the folder as typed on the command line: not compared.
    return _training.final_stage_dir(run_dir, recipe), config, (() if config.init_from else ("init_from",))


def _publish(recipe: dict[str, Any], recipe_ref: str, run_dir, destination, force: bool) -> _pretrained.Card:
    artifact = dict(recipe.get("artifact", {}))
    if artifact.get("lce_export"):
        _export.require_lce("the card's LCE measurement (lce_export = true)")  # before reading or writing anything
    selection = None
    if "method_evidence" in artifact:  # before reading the run: a wrong path fails at once
        evidence = Path(artifact["method_evidence"])
        if not evidence.is_file():
            raise FileNotFoundError(f"[artifact] method_evidence {evidence.as_posix()!r} does not exist "
                                    "(relative paths are read from the current directory; "
                                    "benchmarks/reproduce.py writes docs/benchmarks/reproduce.json)")
        report = _training.read_json(evidence, hint="method_evidence must name benchmarks/reproduce.py's report")
        selection = _pretrained.method_selection(report, artifact.get("method_followed"), source=evidence.as_posix())
    record_dir = Path(run_dir)
    run_dir, recipe_config, ignore = _recipe_run(recipe, record_dir)
    config, metrics = _read_run(run_dir)
    name, tag = _pretrained.recipe_artifact(recipe, config.model, config.dataset)
    root = Path(destination) if destination is not None else _pretrained.artifacts_dir()
    folder = _pretrained.inside_folder(root, name, tag)
    problems = []
    differ = _differences(recipe_config.to_dict(), config, ignore)
    if differ:
        problems.append(f"the run differs from its recipe {recipe_ref} in: {', '.join(differ)}")
    card_path = folder / _pretrained.CARD_FILE
    if card_path.is_file():
        try:
            old = _pretrained.Card.from_dict(json.loads(card_path.read_text()))
        except (ValueError, TypeError, AttributeError) as err:
            raise ValueError(f"model card {card_path} is malformed: {' '.join(str(err).split())[:200]}; "
                             "move it away to publish here") from None
        accuracy = metrics.get("test_accuracy")
        if not isinstance(accuracy, (int, float)) or accuracy < old.test_accuracy:
            problems.append(f"its test accuracy {accuracy} is below the published {old.test_accuracy:.4f}")
        if old.recipe != recipe_ref:
            problems.append(f"the published artifact comes from recipe {old.recipe}, this run from {recipe_ref}")
        old_differ = _differences(old.train_config, config, ignore) if old.train_config else []
        if old_differ:
            problems.append(f"its config differs from the published artifact's in: {', '.join(old_differ)}")
    if problems and not force:
        raise ValueError(f"not publishing {run_dir} as {name}/{tag} in {root}: {'; '.join(problems)}; "
                         "publish a better or matching run, or replace it anyway with --force (force=True)")
    model = _training.load_model(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{tag}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        weights = staging / _pretrained.WEIGHTS_FILE
        model.save_weights(str(weights))
        input_q, kernel_q = _trained_quantizers(model)
        card = _pretrained.Card(
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
            sha256=_pretrained.sha256_file(weights),
            weights_file=_pretrained.WEIGHTS_FILE,
            data_license=artifact.get("data_license",
                                      _pretrained.DATA_LICENSES.get(config.dataset, "see the dataset's source")),
            model_kwargs=dict(config.model_kwargs),
            input_quantizer=input_q,
            kernel_quantizer=kernel_q,
            description=str(recipe.get("description", "")),
            optimizer=config.optimizer,
            quantizer=config.quantizer,
            epochs=config.epochs,
            train_config=config.to_dict(),
            lce_export=(measure_lce_export(model, config.dataset, config.data_dir)
                        if artifact.get("lce_export") else None),
            binary_forward=_quantizers.binary_forward(model),
            **copy_training_curves(run_dir, staging),
            training=training_record(recipe, recipe_ref, record_dir, staging),
            method_selection=selection,
        )
        atomic_write_json(staging / _pretrained.CARD_FILE, card.to_dict())
        replace_directory(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"published {name}/{tag}: top-1 {100 * card.test_accuracy:.2f} %, "
          f"sha256 {card.sha256[:12]}... -> {folder}")
    if not card.binary_forward:
        print(f"warning: {name}/{tag} is not binary (binary_forward: false on its card)")
    return card
