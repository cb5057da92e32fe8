"""Create an optimizer's variables before training, outside any traced function.

Keras creates slots, hyperparameters and step counters on the first
`apply_gradients`, i.e. inside the first trace of `train_function`; TensorFlow then
traces the function a second time without variable creation. Creating them
beforehand makes `model.fit` trace once (half the start-up of a short run) and
changes no value: every variable starts from the initializer it would have had.

`create_optimizer_variables(optimizer, variables)` handles plain legacy Keras
optimizers, larq's `CaseOptimizer` (each inner optimizer gets the variables its
predicate claims) and any optimizer with a `create_variables(variables)` method
(`bnnzoo.optimizers.FSG`).

!!! example
    ```python
    import tensorflow as tf
    from bnnzoo.optimizers import create_optimizer_variables, get_optimizer

    kernel = tf.Variable(tf.ones((2, 2)))
    opt = get_optimizer("adam", 1e-3)
    assert opt.weights == []
    create_optimizer_variables(opt, [kernel])
    # the step count, then Adam's m and v of the kernel
    assert [tuple(w.shape) for w in opt.weights] == [(), (2, 2), (2, 2)]
    assert opt.get_slot_names() == ["m", "v"] and float(tf.reduce_sum(opt.get_slot(kernel, "v"))) == 0.0
    ```
"""

from __future__ import annotations

from typing import Sequence

import larq as lq
import tensorflow as tf

__all__ = ["applying_optimizers", "create_optimizer_variables"]


def create_optimizer_variables(optimizer, variables: Sequence[tf.Variable]) -> None:
    """Create `optimizer`'s step counter, hyperparameters and slots for `variables`.

    Idempotent: variables that exist are kept as they are.

    Args:
        optimizer: a legacy Keras optimizer, an `lq.optimizers.CaseOptimizer` or an
            optimizer with a `create_variables(variables)` method.
        variables: the variables it will train (e.g. `model.trainable_variables`).
    """
    variables = list(variables)
    with tf.init_scope():
        if hasattr(optimizer, "create_variables"):
            optimizer.create_variables(variables)
        elif isinstance(optimizer, lq.optimizers.CaseOptimizer):
            if optimizer.var_opt_mapping is None:
                optimizer._compute_var_opt_mapping([(None, v) for v in variables])
            _ = optimizer.iterations
            claimed = [[] for _ in optimizer.optimizers]
            for v in variables:
                index = optimizer.var_opt_mapping.get(lq.optimizers._var_key(v))
                if index is not None:
                    claimed[index].append(v)
            for inner, inner_variables in zip(optimizer.optimizers, claimed):
                create_optimizer_variables(inner, inner_variables)
        elif isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer):
            optimizer._create_all_weights(variables)
        else:
            raise TypeError(
                "optimizer must be a legacy Keras optimizer, an lq.optimizers.CaseOptimizer or "
                f"define create_variables(variables), got {type(optimizer).__name__}"
            )


def applying_optimizers(optimizer) -> list:
    """The optimizers inside `optimizer` that apply gradients themselves.

    Unwraps `lq.optimizers.CaseOptimizer` (every member, in order) and optimizers that
    delegate their updates to a legacy Keras optimizer `inner` (FSG); any other
    optimizer is its own only member. Used where a setting or a question concerns
    the optimizers that own slots and clip gradients (`TrainConfig.clipnorm`,
    `ThresholdBlocking`).

    Args:
        optimizer: an optimizer as a builder returns it.

    !!! example
        ```python
        import bnnzoo
        from bnnzoo.optimizers import applying_optimizers

        members = applying_optimizers(bnnzoo.optimizers.get_optimizer("bop", 1e-3))
        assert [type(o).__name__ for o in members] == ["Bop", "Adam"]
        ```
    """
    if isinstance(optimizer, lq.optimizers.CaseOptimizer):
        return [o for member in optimizer.optimizers for o in applying_optimizers(member)]
    inner = getattr(optimizer, "inner", None)
    if isinstance(inner, tf.keras.optimizers.legacy.Optimizer):
        return applying_optimizers(inner)
    return [optimizer]
