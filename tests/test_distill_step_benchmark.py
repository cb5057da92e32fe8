"""benchmarks/distill_step.py: the reactnet recipes' distilled student step, teacher per
batch against teacher outputs computed once."""

import json

import pytest


@pytest.fixture(scope="module")
def distill_step(load_script):
    return load_script("benchmarks/distill_step.py")


def test_arms_are_the_recipes_last_stages_and_their_teacher(distill_step):
    teacher, students = distill_step.recipe_configs(distill_step.FULL)
    assert list(students) == ["reactnet-fashion_mnist", "reactnet-fashion_mnist-small"]
    assert (teacher.model, teacher.input_quantizer, teacher.kernel_quantizer) == ("reactnet", "none", "none")
    assert [c.model_kwargs["width"] for c in students.values()] == [0.5, 0.25]
    for config in students.values():  # the binary stage: no quantizer switched off
        assert config.model == "reactnet" and config.batch_size == teacher.batch_size == 128
        assert "none" not in (config.input_quantizer, config.kernel_quantizer)
        assert config.teacher == "runs/zoo/teachers/reactnet_float-fashion_mnist"


def test_quick_run_writes_step_times_and_the_share_caching_saves(distill_step, tmp_path):
    assert distill_step.main(["--quick", "--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "distill_step.json").read_text())
    t, s = report["timing"], report["summary"]
    assert set(t["seconds_per_step"]) == {"teacher_train", "teacher_forward"} | {
        f"{name}:{how}" for name in distill_step.RECIPES for how in ("online", "cached")}
    for kind in ("seconds_per_step", "cpu_seconds_per_step"):
        for name in distill_step.RECIPES:
            expected = 1 - t[kind][f"{name}:cached"] / t[kind][f"{name}:online"]
            assert s["saved_share"][kind][name] == pytest.approx(expected)
    assert report["quick"] and len(t["load_before"]) == 3
    md = (tmp_path / "distill_step.md").read_text()
    assert md.count("\n| reactnet-fashion_mnist") == 4 and md.count("Cached teacher outputs save") == 2
