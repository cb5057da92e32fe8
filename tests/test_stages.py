"""Multi-stage recipes (`[[stages]]`, `bnnzoo.training.train_stages`): stage 2 starts from
stage 1's weights, stages of two architectures are refused before training, the same
command skips a finished stage and resumes an interrupted one, and the staged run
publishes from its last stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from bnnzoo import cli, pretrained, zoo
from bnnzoo.training import load_model, read_recipe, stage_configs, stage_dir, train_stages

RECIPE = """\
model = "binarynet_mlp"
epochs = 1
model_kwargs = {units = 16, hidden_layers = 1}

[[stages]]   # real weights, binary activations
kernel_quantizer = "none"
learning_rate = 0.01

[[stages]]   # both binary, from stage 1
epochs = 2
"""


class InitialWeights(tf.keras.callbacks.Callback):
    """The model's weights when each `fit` starts (one entry per stage trained)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_begin(self, logs=None):
        self.seen.append([w.copy() for w in self.model.get_weights()])


class StopBeforeEpoch(tf.keras.callbacks.Callback):
    """Ctrl-C when epoch `epoch` (0-based) of the `fit` number `call` (from 0) starts,
    after the previous epoch's checkpoint."""

    def __init__(self, call: int, epoch: int):
        super().__init__()
        self.call, self.epoch, self.calls = call, epoch, -1

    def on_train_begin(self, logs=None):
        self.calls += 1

    def on_epoch_begin(self, epoch, logs=None):
        if self.calls == self.call and epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A finished two-stage run (recipe recorded as `bnnzoo train --recipe` records it)
    and the weights each stage started from."""
    folder = tmp_path_factory.mktemp("staged")
    path = folder / "two.toml"
    path.write_text(RECIPE)
    recipe = read_recipe(path)
    seen = InitialWeights()
    out = folder / "run"
    results = train_stages(stage_configs(recipe), out, callbacks=[seen], verbose=0,
                           record={pretrained.RECIPE_RECORD: pretrained.recipe_record(path, recipe)})
    return out, results, seen.seen


def test_stage_two_starts_from_stage_one_weights(staged):
    out, (first, second), initial = staged
    assert len(initial) == 2
    stage_one_final = load_model(stage_dir(out, 1)).get_weights()
    # stage 1 trained (its final weights are not its initial ones) ...
    assert any(not np.array_equal(a, b) for a, b in zip(initial[0], stage_one_final))
    # ... and stage 2 started exactly there (a fresh start with the same seed would equal initial[0])
    assert len(initial[1]) == len(stage_one_final)
    for got, want in zip(initial[1], stage_one_final):
        np.testing.assert_array_equal(got, want)
    config = json.loads((stage_dir(out, 2) / "config.json").read_text())
    assert config["init_from"] == str(stage_dir(out, 1)) and config["kernel_quantizer"] is None
    assert json.loads((stage_dir(out, 1) / "config.json").read_text())["kernel_quantizer"] == "none"
    assert second.run_dir == stage_dir(out, 2) and len(second.history["loss"]) == 2
    assert first.metrics["binary_params"] == 0 < second.metrics["binary_params"]


def test_staged_run_publishes_its_last_stage(staged, tmp_path):
    out, (_, second), _ = staged
    card = zoo.publish_run(out, tmp_path / "artifacts")
    assert card.test_accuracy == pytest.approx(second.metrics["test_accuracy"])
    assert card.epochs == 2 and card.binary_params == second.metrics["binary_params"]
    # the card says how it was trained: both stages, their seconds, the command
    training = card.training
    assert [p["part"] for p in training["parts"]] == ["stage-1", "stage-2"]
    assert [p["epochs"] for p in training["parts"]] == [1, 2]
    stage_seconds = [json.loads((stage_dir(out, k) / "metrics.json").read_text())["train_seconds"] for k in (1, 2)]
    assert [p["train_seconds"] for p in training["parts"]] == stage_seconds
    assert training["train_seconds"] == pytest.approx(sum(stage_seconds), abs=0.1) and training["train_seconds"] > 0
    assert training["command"] == f"recipes/run_recipes.sh {card.recipe}"
    folder = tmp_path / "artifacts" / card.name / card.tag
    assert json.loads((folder / "history-stage-1.json").read_text()) == \
        json.loads((stage_dir(out, 1) / "history.json").read_text())
    assert training["parts"][0]["history_file"] == "history-stage-1.json"
    assert "history_file" not in training["parts"][1]  # the last stage's is history.json
    assert (folder / "curves.png").read_bytes() != (stage_dir(out, 2) / "curves.png").read_bytes()
    assert pretrained.Card.from_dict(json.loads((folder / "card.json").read_text())) == card
    with pytest.raises(ValueError, match=rf"one stage of a multi-stage recipe run; publish the run itself: "
                                         rf"bnnzoo publish {out}"):
        zoo.publish_run(stage_dir(out, 2), tmp_path / "other")


@pytest.mark.parametrize("stages,needle", [
    ('[[stages]]\n[[stages]]\nmodel_kwargs = {units = 8, hidden_layers = 1}\n',
     "stages 1 and 2 of the recipe train different networks (model_kwargs "
     "{'units': 16, 'hidden_layers': 1} vs {'units': 8, 'hidden_layers': 1})"),
    # (a stage's model_kwargs must suit its own model: that is checked first, per stage)
    ('[[stages]]\n[[stages]]\n[[stages]]\nmodel = "binarynet"\nmodel_kwargs = {width = 0.25}\n',
     "stages 1 and 3 of the recipe train different networks (model 'binarynet_mlp' vs 'binarynet'; "
     "model_kwargs {'units': 16, 'hidden_layers': 1} vs {'width': 0.25})"),
    ('[[stages]]\ndataset = "fashion_mnist"\n[[stages]]\n',
     "stages 1 and 2 of the recipe train different networks (dataset 'fashion_mnist' vs 'digits')"),
])
def test_stages_of_two_architectures_are_refused_before_training(tmp_path, capsys, stages, needle):
    top = 'model = "binarynet_mlp"\nepochs = 1\nmodel_kwargs = {units = 16, hidden_layers = 1}\n'
    path = tmp_path / "bad.toml"
    path.write_text(top + stages)
    with pytest.raises(ValueError) as err:
        stage_configs(read_recipe(path))
    assert str(err.value).startswith(needle) and "\n" not in str(err.value)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--recipe", str(path), "--out", str(tmp_path / "run")])
    message = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and message.count("\n") == 0 and needle in message
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError) as err:
        train_stages(_configs_unchecked(path), tmp_path / "run2", verbose=0)
    assert needle in str(err.value) and not (tmp_path / "run2").exists()


def _configs_unchecked(path):
    from bnnzoo.training import TrainConfig, stage_values

    return [TrainConfig.from_dict(v) for v in stage_values(read_recipe(path))]


def test_same_command_skips_a_finished_stage_and_resumes_the_next(tmp_path, capsys):
    path = tmp_path / "two.toml"
    path.write_text(RECIPE)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # stage 1 done, stage 2 stopped after its epoch 1 of 2
        train_stages(stage_configs(read_recipe(path)), out, callbacks=[StopBeforeEpoch(call=1, epoch=1)],
                     verbose=0)
    stage_one = (stage_dir(out, 1) / "model.keras").stat().st_mtime_ns
    assert (stage_dir(out, 2) / "checkpoints").is_dir() and not (out / pretrained.RECIPE_RECORD).exists()
    capsys.readouterr()
    assert cli.main(["train", "--recipe", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{stage_dir(out, 1)} already holds this finished run; nothing to train" in printed
    assert f"Resuming {stage_dir(out, 2)} after epoch 1/2" in printed
    assert (stage_dir(out, 1) / "model.keras").stat().st_mtime_ns == stage_one
    assert len(json.loads((stage_dir(out, 2) / "history.json").read_text())["loss"]) == 2
    assert not (stage_dir(out, 2) / "checkpoints").exists()
    assert json.loads((out / pretrained.RECIPE_RECORD).read_text())["recipe"]["stages"][1] == {"epochs": 2}


def test_flags_override_every_stage_and_init_from_only_the_first(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text(RECIPE)
    args = cli.build_parser().parse_args(["train", "--recipe", str(path), "--epochs", "3", "--lr", "0.5",
                                          "--init-from", "float-run"])
    first, second = cli.stage_configs_from_args(args)
    assert first.epochs == second.epochs == 3 and first.learning_rate == second.learning_rate == 0.5
    assert first.init_from == "float-run" and second.init_from is None  # train_stages chains stage 2
    with pytest.raises(ValueError, match=r"has \[\[stages\]\]"):
        cli.config_from_args(args)


@pytest.mark.parametrize("stages,needle", [
    ("stages = []\n", "stages must be a non-empty array of tables ([[stages]]), got []"),
    ("[[stages]]\n[[stages]]\nepoch = 2\n", "stage 2 has keys ['epoch'] that are not TrainConfig fields"),
    ("[[stages]]\n[[stages]]\nepochs = 0\n", "stage 2: epochs must be an integer in [1, 1000000], got 0"),
])
def test_malformed_stages_are_refused_in_one_line(tmp_path, stages, needle):
    path = tmp_path / "bad.toml"
    path.write_text('epochs = 1\n' + stages)
    with pytest.raises(ValueError) as err:
        stage_configs(read_recipe(path))
    assert str(err.value).startswith(needle) and "\n" not in str(err.value)
