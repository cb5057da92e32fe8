"""`bnnzoo.optimizers.create_optimizer_variables`: every variable an optimizer would
create on its first step, created up front, with its initial value."""

from __future__ import annotations

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from bnnzoo.optimizers import Bop2ndOrder, create_optimizer_variables


def _variables():
    binary = tf.Variable(tf.ones((3, 2)), name="binary_kernel")
    binary.precision = 1  # what lq.optimizers.Bop.is_binary_variable looks for
    real = tf.Variable(tf.zeros((2,)), name="bias")
    return binary, real


def test_plain_optimizer_gets_step_hypers_and_zero_slots():
    _, real = _variables()
    adam = tf.keras.optimizers.legacy.Adam(1e-3)
    create_optimizer_variables(adam, [real])
    slots = {name: adam.get_slot(real, name).numpy() for name in adam.get_slot_names()}
    assert set(slots) == {"m", "v"}
    for value in slots.values():
        np.testing.assert_array_equal(value, np.zeros(2))
    assert int(adam.iterations.numpy()) == 0
    assert "learning_rate" in adam._hyper and isinstance(adam._get_hyper("learning_rate"), tf.Variable)


def test_case_optimizer_gives_each_inner_optimizer_the_variables_it_claims():
    binary, real = _variables()
    bop2 = Bop2ndOrder()
    adam = tf.keras.optimizers.legacy.Adam(1e-3)
    case = lq.optimizers.CaseOptimizer((Bop2ndOrder.is_binary_variable, bop2), default_optimizer=adam)
    create_optimizer_variables(case, [binary, real])
    assert set(bop2.get_slot_names()) >= {"m", "v"}
    np.testing.assert_array_equal(bop2.get_slot(binary, "m").numpy(), np.zeros((3, 2)))
    with pytest.raises(KeyError):
        bop2.get_slot(real, "m")  # the real-valued variable belongs to Adam
    np.testing.assert_array_equal(adam.get_slot(real, "m").numpy(), np.zeros(2))
    with pytest.raises(KeyError):
        adam.get_slot(binary, "m")


def test_is_idempotent_and_keeps_existing_values():
    _, real = _variables()
    adam = tf.keras.optimizers.legacy.Adam(1e-3)
    create_optimizer_variables(adam, [real])
    adam.get_slot(real, "m").assign([1.0, 2.0])
    count = len(adam.weights)
    create_optimizer_variables(adam, [real])
    assert len(adam.weights) == count
    np.testing.assert_array_equal(adam.get_slot(real, "m").numpy(), [1.0, 2.0])


def test_unsupported_optimizer_is_refused_by_type():
    class NotAnOptimizer:
        pass

    with pytest.raises(TypeError, match=r"optimizer must be a legacy Keras optimizer.*got NotAnOptimizer"):
        create_optimizer_variables(NotAnOptimizer(), [])
