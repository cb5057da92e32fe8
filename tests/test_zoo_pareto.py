"""benchmarks/zoo_pareto.py: every shipped card's LCE export is measured and agrees
with Keras, and the accuracy-against-size table is built from those measurements."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from bnnzoo import pretrained

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def zoo_pareto():
    spec = importlib.util.spec_from_file_location("zoo_pareto", REPO / "benchmarks" / "zoo_pareto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(name, acc, size):
    return {"artifact": name, "test_accuracy": acc, "lce_bytes": size}


def test_pareto_front_keeps_only_undominated_artifacts(zoo_pareto):
    rows = [_row("small", 0.80, 100), _row("big_better", 0.90, 300), _row("dominated", 0.85, 400),
            _row("tie_smaller", 0.90, 200), _row("no_export", 0.95, None)]
    # big_better is beaten by tie_smaller (same accuracy, smaller); dominated by both.
    assert zoo_pareto.pareto_front(rows) == {"small", "tie_smaller", "no_export"}
    assert zoo_pareto.pareto_front([_row("only", 0.5, None)]) == {"only"}


def test_every_shipped_card_records_a_matching_lce_export(zoo_pareto):
    """The committed measurement of every shipped card: 100 % top-1 agreement on the
    whole test set, for the card's current weights (a retrained artifact without a new
    measurement fails here, naming the card)."""
    cards = zoo_pareto.shipped_cards()
    assert cards
    for card in cards:
        where = f"{card.name}:{card.tag} (run benchmarks/zoo_pareto.py --update-cards)"
        path = REPO / "benchmarks" / "results" / "zoo_pareto" / f"{card.name}-{card.tag}.json"
        assert path.is_file(), f"no LCE measurement for {where}"
        stored = json.loads(path.read_text())
        assert stored["sha256"] == card.sha256, f"LCE measurement of {where} is for other weights"
        assert stored["version"] == zoo_pareto.VERSION, where
        assert card.lce_export == stored["lce_export"], f"card.lce_export of {where} differs from its measurement"
        lce = card.lce_export
        assert "error" not in lce, f"{where}: {lce.get('error')}"
        assert lce["top1_agreement"] == 1.0, where
        assert lce["test_images"] == card.test_size, where
        assert lce["max_abs_diff"] <= zoo_pareto.ATOL, where
        assert 0 < lce["file_bytes"] < card.float32_memory_bytes, where


@pytest.mark.lce
def test_measure_and_report_one_artifact(zoo_pareto, tmp_path, capsys):
    """A real LCE conversion of a small shipped card: stored, reused on a rerun,
    and tabulated."""
    card = pretrained.get_card("binarynet_mlp", "digits")
    results = tmp_path / "results"
    measured = zoo_pareto.measure(card, results)
    assert "measuring binarynet_mlp:digits" in capsys.readouterr().out
    lce = measured["lce_export"]
    assert lce["top1_agreement"] == 1.0 and lce["test_images"] == 359
    assert lce["ops"]["LceBconv2d"] == 3  # the three binary-input layers run as binary kernels
    assert lce["file_bytes"] == pytest.approx(card.lce_export["file_bytes"], rel=0.02)
    assert zoo_pareto.measure(card, results) == measured
    assert "measuring" not in capsys.readouterr().out  # the stored result was reused

    # a result for other weights (another sha256) is measured again, not reused
    stale = json.loads((results / "binarynet_mlp-digits.json").read_text())
    stale["sha256"] = "0" * 64
    (results / "binarynet_mlp-digits.json").write_text(json.dumps(stale))
    zoo_pareto.measure(card, results)
    assert "measuring binarynet_mlp:digits" in capsys.readouterr().out

    rows = [zoo_pareto.row(card, measured)]
    zoo_pareto.write_report(rows, tmp_path / "out", "python benchmarks/zoo_pareto.py")
    table = (tmp_path / "out" / "zoo_pareto.md").read_text()
    assert "| `binarynet_mlp:digits` | digits | 98.33 % |" in table and "★" in table
    report = json.loads((tmp_path / "out" / "zoo_pareto.json").read_text())
    assert report["rows"][0]["lce_top1_agreement"] == 1.0 and report["rows"][0]["pareto"]


def test_unknown_dataset_lists_the_ones_with_artifacts(zoo_pareto):
    with pytest.raises(SystemExit, match="--dataset 'cifar10' has no shipped artifact; datasets with one: "
                                         "digits, fashion_mnist"):
        zoo_pareto.shipped_cards("cifar10")


@pytest.mark.slow
@pytest.mark.lce
def test_every_shipped_card_exports_again_with_full_agreement(zoo_pareto, tmp_path):
    """Re-export every shipped artifact now (minutes) and check it on its whole test set."""
    for card in zoo_pareto.shipped_cards():
        lce = zoo_pareto.measure(card, tmp_path)["lce_export"]
        assert "error" not in lce and lce["top1_agreement"] == 1.0, f"{card.name}:{card.tag}: {lce}"
