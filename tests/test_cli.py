"""The bnnzoo command line: listing, training, evaluating, and failing early on bad input."""

import json
import os
import subprocess
import sys

import pytest

from bnnzoo import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def fails(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(list(argv))
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_list_shows_families_quantizers_optimizers(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for word in ("binarynet_mlp", "binarynet", "ste_sign", "bop", "digits"):
        assert word in out
    annealed = next(line for line in out.splitlines() if line.startswith("Annealed quantizers: "))
    names = annealed.split(": ", 1)[1].split(", ")
    assert {"bnnpp", "ste_warmup", "proxconnect"} <= set(names) and "ste_sign" not in names


@pytest.mark.parametrize("command", ["list", "train", "evaluate"])
def test_help_for_each_subcommand(capsys, command):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: bnnzoo " + command in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["--epochs", "-3"], "--epochs"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--model", "nope"], "binarynet_mlp"),
    (["--optimizer", "nope"], "adam"),
    (["--quantizer", "nope"], "ste_sign"),
    (["--threshold", "-1", "--optimizer", "bop"], "--threshold"),
    (["--optimizer", "bop", "--gamma", "2"], "gamma"),
    (["--seed", "-1"], "--seed must be an integer in 0..4294967295"),
    (["--seed", "4294967296"], "--seed must be an integer in 0..4294967295"),
])
def test_train_rejects_bad_input_before_work(capsys, tmp_path, argv, needle):
    err = fails(capsys, "train", "--out", str(tmp_path / "r"), *argv)
    assert needle in err
    assert not (tmp_path / "r" / "config.json").exists()


def test_train_unknown_dataset_lists_valid_ones(capsys, tmp_path):
    err = fails(capsys, "train", "--dataset", "no_such_data", "--epochs", "1", "--out", str(tmp_path / "r"))
    assert "digits, fashion_mnist" in err


def test_train_then_evaluate(capsys, tmp_path):
    out = tmp_path / "run"
    code, text, _ = run(capsys, "train", "--epochs", "3", "--model-arg", "units=128", "--out", str(out))
    assert code == 0 and "test accuracy:" in text
    trained = json.loads((out / "metrics.json").read_text())["test_accuracy"]
    code, text, _ = run(capsys, "evaluate", str(out), "--json")
    assert code == 0
    assert json.loads(text)["test_accuracy"] == pytest.approx(trained, abs=1e-6)


def test_evaluate_needs_a_source(capsys, tmp_path):
    assert "give either" in fails(capsys, "evaluate")
    assert "no run directory" in fails(capsys, "evaluate", str(tmp_path / "missing"))


def test_key_value_arguments():
    assert cli.key_value("units=64") == ("units", 64)
    assert cli.key_value("bias-correction=adam") == ("bias_correction", "adam")
    assert cli.key_value("filters=[8,8]") == ("filters", [8, 8])


def test_console_script_keeps_tensorflow_quiet(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", "import _bnnzoo_cli, sys; sys.argv=['bnnzoo','list']; "
                           "sys.exit(_bnnzoo_cli.main())"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cpu_feature_guard" not in done.stderr and "oneDNN" not in done.stderr
    assert "binarynet_mlp" in done.stdout


def test_console_script_filters_only_tensorflows_early_notices_below_the_level():
    """TF >= 2.20 writes some notices (oneDNN's) before absl logging starts, past
    TF_CPP_MIN_LOG_LEVEL; the console script drops absl lines below the level only."""
    import _bnnzoo_cli

    onednn = ("I0000 00:00:1796531667.322472   29969 port.cc:153] oneDNN custom operations are on. You may see "
              "slightly different numerical results")
    assert _bnnzoo_cli._is_startup_noise(onednn, 2)
    assert _bnnzoo_cli._is_startup_noise(
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", 2)
    assert not _bnnzoo_cli._is_startup_noise("E0000 00:00:1796531667.3 29969 x.cc:1] a real error", 2)
    assert not _bnnzoo_cli._is_startup_noise(onednn, 0)
    assert not _bnnzoo_cli._is_startup_noise("UserWarning: something from Python", 3)


def test_train_reads_the_recipe_once_and_builds_the_optimizer_once(capsys, tmp_path, monkeypatch):
    import bnnzoo
    from bnnzoo import training
    from bnnzoo.optimizers.builders import OPTIMIZERS

    reads, builds = [], []
    real_read = training.read_recipe
    monkeypatch.setattr(training, "read_recipe", lambda path: reads.append(path) or real_read(path))
    adam = OPTIMIZERS.get("adam")
    counted = bnnzoo.optimizers.OptimizerSpec(
        "adam", lambda learning_rate, **kw: builds.append(learning_rate) or adam.builder(learning_rate, **kw))
    monkeypatch.setitem(OPTIMIZERS._entries, "adam", counted)
    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "binarynet_mlp"\nepochs = 1\n[model_kwargs]\nunits = 16\n')
    code, _, _ = run(capsys, "train", "--recipe", str(recipe), "--out", str(tmp_path / "run"))
    assert code == 0 and (tmp_path / "run" / "recipe.json").is_file()
    assert len(reads) == 1 and len(builds) == 1
