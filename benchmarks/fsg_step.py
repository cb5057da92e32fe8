"""FSG's training-step cost on the reproduction's FSG network, against STE.

The network and settings are those of `benchmarks/reproduce.py`'s `fsg` claim: the
BinaryNet CNN at width 0.25 with ReLU float activations, weights-only binarization
(`dorefa_weights`), batch 128, 28x28x1 inputs, 10 classes. One model per arm (STE +
Adam, FSG as built, FSG's authors' variant), each compiled as `bnnzoo.training.train`
compiles it; `train_on_batch` on one fixed batch of random inputs (a step's cost does
not depend on the pixel values), in interleaved rounds (`interleaved_step_times`), so a
change of machine load hits every arm alike. The report gives the median wall and
process-CPU seconds per step, their ratios to STE, the machine's load before and
after, and whether FSG meets issue #27's bar (at most 2.5x an STE step).

    ../shared/tools/heavy .venv/bin/python benchmarks/fsg_step.py
    .venv/bin/python benchmarks/fsg_step.py --quick      # seconds-long, 8x8 inputs (tests)

Writes `<out-dir>/fsg_step.{json,md}`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import compile_as_trained, random_batch, step_benchmark_main, timed_with_load  # noqa: E402

VERSION = 1
BAR = 2.5  # issue #27: FSG's step at most 2.5x an STE step on this CNN
ARMS = ("ste", "fsg", "fsg_authors")
FULL = dict(input_shape=(28, 28, 1), rounds=12, steps=5, quick_model_kwargs=None)
QUICK = dict(input_shape=(8, 8, 1), rounds=2, steps=1, quick_model_kwargs={"width": 0.0625})


def arm_configs(settings: dict) -> dict:
    """`TrainConfig` of every arm: the `fsg` claim's fields of `reproduce.py` (its base and
    the arm's own), one epoch; `--quick` narrows the network as reproduce's `--quick` does."""
    import reproduce
    from bnnzoo.training import TrainConfig

    claim = reproduce.CLAIMS["fsg"]
    configs = {}
    for arm in claim.arms:
        fields = reproduce._merge(claim.base, arm.config)
        if settings["quick_model_kwargs"]:
            fields["model_kwargs"] = {**fields.get("model_kwargs", {}), **settings["quick_model_kwargs"]}
        configs[arm.name] = TrainConfig(**{**fields, "dataset": "fashion_mnist", "epochs": 1})
    missing = sorted(set(ARMS) - set(configs))
    if missing:
        raise SystemExit(f"reproduce.py's fsg claim has no arm {missing[0]!r}; its arms: {', '.join(configs)}")
    return {name: configs[name] for name in ARMS}


def compiled_model(config, input_shape, num_classes: int = 10) -> tf.keras.Model:
    """The model `config` trains, wrapped and compiled as `bnnzoo.training.train` does."""
    from bnnzoo import training

    tf.keras.utils.set_random_seed(0)
    model = training.build_model(config, input_shape, num_classes)
    return compile_as_trained(training.wrap_for_optimizer(model, config.optimizer), config)


def measure(settings: dict) -> dict:
    """Interleaved step times of every arm, with the load average before and after."""
    configs = arm_configs(settings)
    x, y = random_batch(next(iter(configs.values())).batch_size, settings["input_shape"])
    models = {name: compiled_model(config, settings["input_shape"]) for name, config in configs.items()}
    timing = timed_with_load(models, x, y, settings)
    timing["configs"] = {name: config.to_dict() for name, config in configs.items()}
    return timing


def summarize(timing: dict) -> dict:
    """Ratios of every arm's median step time to STE's, wall and CPU, and the bar's verdict."""
    ratios = {}
    for kind in ("seconds_per_step", "cpu_seconds_per_step"):
        ste = timing[kind]["ste"]
        ratios[kind] = {arm: timing[kind][arm] / ste for arm in ARMS if arm != "ste"}
    meets = {arm: ratios["seconds_per_step"][arm] <= BAR for arm in ratios["seconds_per_step"]}
    return {"ratio_to_ste": ratios, "bar": BAR, "meets_bar": meets}


def report_lines(report: dict) -> list[str]:
    """The Markdown report."""
    t, s = report["timing"], report["summary"]
    lines = [
        "# FSG's step against STE on the reproduction's FSG network", "",
        f"`{report['command']}` ({report['date']}, {report['machine']}; load average before "
        f"{t['load_before'][0]:.2f}, after {t['load_after'][0]:.2f}; {t['method']}).", "",
        "| arm | wall ms/step | CPU ms/step | wall ratio to STE | CPU ratio to STE |",
        "| --- | --- | --- | --- | --- |",
    ]
    for arm in ARMS:
        wall, cpu = t["seconds_per_step"][arm], t["cpu_seconds_per_step"][arm]
        ratio = s["ratio_to_ste"]["seconds_per_step"].get(arm)
        cpu_ratio = s["ratio_to_ste"]["cpu_seconds_per_step"].get(arm)
        lines.append(f"| {arm} | {wall * 1000:.1f} | {cpu * 1000:.1f} | "
                     f"{'1' if ratio is None else f'{ratio:.2f}x'} | {'1' if cpu_ratio is None else f'{cpu_ratio:.2f}x'} |")
    verdict = ", ".join(f"{arm} {'meets' if ok else 'misses'} it" for arm, ok in s["meets_bar"].items())
    lines += ["", f"Bar (issue #27): at most {s['bar']}x an STE step (wall): {verdict}.", ""]
    return lines


def main(argv=None) -> int:
    return step_benchmark_main(argv, __file__, __doc__, VERSION, FULL, QUICK, measure, summarize, report_lines)


if __name__ == "__main__":
    sys.exit(main())
