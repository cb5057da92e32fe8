"""The training step of the reactnet recipes' distilled students, with the teacher run
on every batch against its outputs computed once (`Distiller.teacher_logits`).

For each student recipe (`recipes/reactnet-fashion_mnist.toml` and `-small.toml`), the
last stage (binary weights and activations) is built as `bnnzoo.training.train` builds
it. It is wrapped in a `Distiller` around the recipe's teacher network, built from
`recipes/teachers/<name>.toml` and left untrained, since a step's cost does not
depend on the weights. Each arm is compiled and timed with `train_on_batch` on one
fixed batch of random inputs, in interleaved rounds (`interleaved_step_times`), so a
change of machine load hits every arm alike. The `online` arm fits on the labels and
runs the teacher inside the step. The `cached` arm fits on the labels and the logits
`teacher_logits` computed for that batch beforehand. For scale, the teacher's own
training step and its forward pass are timed too. The report gives the median wall
and process-CPU seconds per step and, per recipe, the share of the online step that
caching saves.

    ../shared/tools/heavy .venv/bin/python benchmarks/distill_step.py
    .venv/bin/python benchmarks/distill_step.py --quick     # seconds-long, 8x8 inputs (tests)

Writes `<out-dir>/distill_step.{json,md}`.
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
ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("reactnet-fashion_mnist", "reactnet-fashion_mnist-small")
TEACHERS_PREFIX = "runs/zoo/teachers/"
FULL = dict(input_shape=(28, 28, 1), rounds=6, steps=3, quick_model_kwargs=None)
QUICK = dict(input_shape=(8, 8, 1), rounds=2, steps=1, quick_model_kwargs={"width": 0.0625, "depth": 5})


def recipe_configs(settings: dict) -> tuple[object, dict]:
    """(the teacher's `TrainConfig`, {recipe: its last stage's `TrainConfig`}); every
    recipe must name the same teacher, whose recipe is `recipes/teachers/<name>.toml`."""
    from bnnzoo.training import TrainConfig, read_recipe, stage_configs

    def narrowed(config):
        if not settings["quick_model_kwargs"]:
            return config
        return TrainConfig.from_dict({**config.to_dict(),
                                      "model_kwargs": {**config.model_kwargs, **settings["quick_model_kwargs"]}})

    students, teachers = {}, set()
    for name in RECIPES:
        last = stage_configs(read_recipe(ROOT / "recipes" / f"{name}.toml"))[-1]
        if not (last.teacher or "").startswith(TEACHERS_PREFIX):
            raise SystemExit(f"recipes/{name}.toml has no teacher under {TEACHERS_PREFIX}, got {last.teacher!r}")
        teachers.add(last.teacher[len(TEACHERS_PREFIX):])
        students[name] = narrowed(last)
    if len(teachers) != 1:
        raise SystemExit(f"the recipes {', '.join(RECIPES)} name different teachers: {sorted(teachers)}")
    teacher = narrowed(stage_configs(read_recipe(ROOT / "recipes" / "teachers" / f"{teachers.pop()}.toml"))[-1])
    return teacher, students


class _Step:
    """What `interleaved_step_times` calls: one step of an arm on its own batch."""

    def __init__(self, step):
        self.train_on_batch = lambda x, y: step()


def build_arms(settings: dict) -> tuple[dict, dict]:
    """({arm: _Step}, {arm: what it times}) on one fixed random batch of the recipes' size."""
    from bnnzoo import training
    from bnnzoo.distillation import wrap_for_distillation

    teacher_config, students = recipe_configs(settings)
    batch = teacher_config.batch_size
    x, y = random_batch(batch, settings["input_shape"])
    tf.keras.utils.set_random_seed(0)
    teacher = compile_as_trained(training.build_model(teacher_config, settings["input_shape"], 10), teacher_config)
    forward = tf.function(lambda images: teacher(images, training=False))
    arms = {"teacher_train": _Step(lambda: teacher.train_on_batch(x, y)),
            "teacher_forward": _Step(lambda: forward(x).numpy())}
    described = {"teacher_train": "the teacher's own training step",
                 "teacher_forward": "the teacher's forward pass in inference mode"}
    for name, config in students.items():
        tf.keras.utils.set_random_seed(0)
        student = training.build_model(config, settings["input_shape"], 10)
        distiller = compile_as_trained(wrap_for_distillation(student, teacher, **config.distillation_kwargs), config)
        logits = tf.constant(distiller.teacher_logits(x.numpy(), batch))
        arms[f"{name}:online"] = _Step(lambda d=distiller: d.train_on_batch(x, y))
        arms[f"{name}:cached"] = _Step(lambda d=distiller, t=logits: d.train_on_batch(x, (y, t)))
        described[f"{name}:online"] = "student step, teacher run on the batch"
        described[f"{name}:cached"] = "student step, teacher logits computed once"
    return arms, described


def measure(settings: dict) -> dict:
    """Interleaved step times of every arm, with the load average before and after."""
    arms, described = build_arms(settings)
    timing = timed_with_load(arms, None, None, settings)
    timing["arms"] = described
    return timing


def summarize(timing: dict) -> dict:
    """Per recipe, the share of the online step that the cached teacher outputs save."""
    saved = {}
    for kind in ("seconds_per_step", "cpu_seconds_per_step"):
        t = timing[kind]
        saved[kind] = {name: 1.0 - t[f"{name}:cached"] / t[f"{name}:online"] for name in RECIPES}
    return {"saved_share": saved}


def report_lines(report: dict) -> list[str]:
    """The Markdown report."""
    t, s = report["timing"], report["summary"]
    lines = [
        "# Distilled students' step: teacher on every batch or its outputs once", "",
        f"`{report['command']}` ({report['date']}, {report['machine']}; load average before "
        f"{t['load_before'][0]:.2f}, after {t['load_after'][0]:.2f}; {t['method']}).", "",
        "| arm | what | wall ms/step | CPU ms/step |",
        "| --- | --- | --- | --- |",
    ]
    for arm, what in t["arms"].items():
        lines.append(f"| {arm} | {what} | {t['seconds_per_step'][arm] * 1000:.1f} | "
                     f"{t['cpu_seconds_per_step'][arm] * 1000:.1f} |")
    lines += [""] + [
        f"Cached teacher outputs save {s['saved_share']['seconds_per_step'][name]:.0%} of the online step "
        f"of `{name}` (wall; CPU {s['saved_share']['cpu_seconds_per_step'][name]:.0%})." for name in RECIPES]
    return lines + [""]


def main(argv=None) -> int:
    return step_benchmark_main(argv, __file__, __doc__, VERSION, FULL, QUICK, measure, summarize, report_lines)


if __name__ == "__main__":
    sys.exit(main())
