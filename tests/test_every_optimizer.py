"""One suite over every registered optimizer (optax style): whatever `list_optimizers()`
names is built, serialized, trained on digits above a bar, interrupted and resumed
bit-identically, and trained under a mirrored strategy, by the same code
(`tests/_base.py`, which `tests/test_contributing.py` runs on an optimizer added the
documented way). A builder registered tomorrow is under all of these checks."""

from __future__ import annotations

import pytest

from _base import (
    run_optimizer_mirrored_test,
    run_optimizer_resume_test,
    run_optimizer_round_trip_test,
    run_optimizer_spec_test,
    run_optimizer_variables_test,
    slow_params,
)
from bnnzoo.optimizers import list_optimizers

OPTIMIZERS = list_optimizers()
# Under a strategy, these repeat a path the default suite already runs (~15 s each on
# the 2-core CI machine), so they run with -m slow: adam is what test_models' mirrored
# runs use, and fsg_attention is fsg's optimizer with another slow net.
MIRRORED_ELSEWHERE = {"adam", "fsg_attention"}


def test_the_suite_covers_the_registry():
    assert {"adam", "bop", "bop2ndorder", "fsg", "fsg_attention"} <= set(OPTIMIZERS)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_config_round_trip(name):
    run_optimizer_round_trip_test(name)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_registered_as_a_spec_with_nothing_on_the_builder(name):
    run_optimizer_spec_test(name)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_trains_digits_and_resumes_bit_identically(name, tmp_path, digits):
    run_optimizer_resume_test(name, tmp_path, digits)


@pytest.mark.parametrize("name", slow_params(OPTIMIZERS, MIRRORED_ELSEWHERE))
def test_trains_under_mirrored_strategy(name, digits, mirrored_strategy):
    run_optimizer_mirrored_test(name, digits, mirrored_strategy)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_variables_created_before_fit_change_no_value(name, digits):
    run_optimizer_variables_test(name, digits)
