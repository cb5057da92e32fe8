"""Assembling a run's parts: data, model, optimizer, the callbacks the parts ask for,
and the compiled model with its checkpoint. Each part is built once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from bnnzoo import callbacks as _callbacks
from bnnzoo import data as _data
from bnnzoo import distillation as _distillation
from bnnzoo import models as _models
from bnnzoo import optimizers as _optimizers
from bnnzoo.training.config import TrainConfig, learning_rate_schedule, make_strategy
from bnnzoo.training.run_dir import load_initial_weights
from bnnzoo.training.teacher import Teacher, load_teacher, resolve_teacher

__all__ = [
    "RunParts",
    "assemble_run",
    "build_model",
    "build_optimizer",
    "compile_model",
    "create_training_variables",
    "run_callbacks",
    "wrap_for_optimizer",
]


@dataclass
class RunParts:
    """What `assemble_run` builds for a run: everything `model.fit` needs except the
    run directory.

    Args:
        config: the run's configuration.
        strategy: the distribution strategy the parts were built under.
        arrays: the data splits.
        model: the compiled model (wrapped as its optimizer trains it, and as a
            `bnnzoo.distillation.Distiller` with a teacher; `student` is the model).
        optimizer: the model's optimizer.
        callbacks: what the parts ask for (quantizer annealing, the optimizer's
            `training_callbacks`).
        epoch: the finished-epoch counter that the checkpoint saves.
        checkpoint: model, optimizer and `epoch`, as a run directory checkpoints them.
        steps_per_epoch: training steps per epoch.
        teacher: the resolved `config.teacher` (`None`: no distillation).
    """

    config: TrainConfig
    strategy: tf.distribute.Strategy
    arrays: _data.ArraySplits
    model: tf.keras.Model
    optimizer: object
    callbacks: list
    epoch: tf.Variable
    checkpoint: tf.train.Checkpoint
    steps_per_epoch: int
    teacher: Teacher | None = None

    @property
    def student(self) -> tf.keras.Model:
        """The model trained, without a distillation wrapper: what is saved, measured and annealed."""
        return _distillation.unwrap(self.model)


def assemble_run(config: TrainConfig, strategy: tf.distribute.Strategy | None = None, *,
                 arrays: _data.ArraySplits | None = None, model: tf.keras.Model | None = None) -> RunParts:
    """The second phase of `train`: load the data (unless `arrays` is given), seed,
    and build, under `strategy`'s scope, the model (unless `model` is given; its
    weights from `config.init_from`), the optimizer, its wrapping, with
    `config.teacher` the teacher and the `bnnzoo.distillation.Distiller` around the
    model, the compiled model, the checkpoint (of the model without the teacher), and
    the callbacks the parts ask for (of the model without the teacher, whose
    quantizers are not annealed).

    Writes nothing: bad optimizer or quantizer arguments fail here, before a run
    directory is touched.

    !!! example
        ```python
        import bnnzoo
        from bnnzoo.training import TrainConfig, assemble_run

        parts = assemble_run(TrainConfig(optimizer="bop", epochs=2, model_kwargs={"units": 16}))
        assert parts.model.optimizer is parts.optimizer  # compiled
        # bop's declared training_callbacks; ste_sign declares no annealing
        assert [type(c) for c in parts.callbacks] == [bnnzoo.optimizers.FlipRate]
        assert parts.steps_per_epoch == -(-len(parts.arrays.x_train) // 64)
        ```
    """
    strategy = strategy or make_strategy(config.strategy)
    if arrays is None:
        arrays = _data.load_arrays(
            config.dataset, validation_fraction=config.validation_fraction, data_dir=config.data_dir
        )
    steps_per_epoch = -(-len(arrays.x_train) // config.batch_size)
    teacher = resolve_teacher(config.teacher) if config.teacher else None
    tf.keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    with strategy.scope():
        if model is None:
            model = build_model(config, arrays.input_shape, arrays.num_classes)
        if config.init_from:
            load_initial_weights(model, config.init_from)
        optimizer = build_optimizer(config, steps_per_epoch)
        model = wrap_for_optimizer(model, config.optimizer)
        if teacher is not None:
            model = _distillation.wrap_for_distillation(model, load_teacher(teacher), **config.distillation_kwargs)
        compile_model(model, optimizer)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="finished_epochs")
        # The teacher is loaded again from its source on resume (teacher.json pins its sha256).
        checkpoint = tf.train.Checkpoint(model=_distillation.unwrap(model), optimizer=optimizer, epoch=epoch)
    student = _distillation.unwrap(model)
    return RunParts(config, strategy, arrays, model, optimizer, run_callbacks(student, config, steps_per_epoch),
                    epoch, checkpoint, steps_per_epoch, teacher)


def build_model(config: TrainConfig, input_shape, num_classes) -> tf.keras.Model:
    input_q, kernel_q = config.quantizer_objects()
    return _models.create_model(
        config.model,
        input_shape=input_shape,
        num_classes=num_classes,
        input_quantizer=input_q,
        kernel_quantizer=kernel_q,
        **config.model_kwargs,
    )


def build_optimizer(config: TrainConfig, steps_per_epoch: int):
    """The optimizer of `config`: its builder with `optimizer_kwargs`, the learning
    rate of `lr_schedule`, and `clipnorm` set on every sub-optimizer.

    A builder with a `decay_steps` argument (the paper schedules of `bop` and
    `bop2ndorder`) gets the run length, `epochs * steps_per_epoch`, unless the config
    gives it.
    """
    kwargs = dict(config.optimizer_kwargs)
    if _optimizers.optimizer_spec(config.optimizer).accepts("decay_steps") and "decay_steps" not in kwargs:
        kwargs["decay_steps"] = config.epochs * steps_per_epoch
    learning_rate = learning_rate_schedule(
        config.lr_schedule, config.learning_rate, config.epochs, steps_per_epoch
    )
    optimizer = _optimizers.get_optimizer(config.optimizer, learning_rate, **kwargs)
    if config.clipnorm is not None:
        for sub in _optimizers.applying_optimizers(optimizer):
            sub.global_clipnorm = float(config.clipnorm)
    return optimizer


def wrap_for_optimizer(model: tf.keras.Model, optimizer: str) -> tf.keras.Model:
    """`model` as optimizer `optimizer` trains it: wrapped by the builder's `wrap_model`
    when it declares one (FSG's own training step, `bnnzoo.fsg.wrap`), else unchanged."""
    return _optimizers.optimizer_spec(optimizer).wrap(model)


def run_callbacks(model: tf.keras.Model, config: "TrainConfig", steps_per_epoch: int) -> list:
    """The callbacks a run of `config` needs, asked of the parts it uses.

    - the model's quantizers: `bnnzoo.callbacks.default_annealing` (annealing of
      every quantizer that declares an `annealing`, by the rule `config.annealing`);
    - the optimizer's `training_callbacks(model, config, steps_per_epoch)` when its
      `bnnzoo.optimizers.OptimizerSpec` declares one (`bop`/`bop2ndorder`: the
      binary-variable check and `FlipRate`).
    """
    found = list(_callbacks.default_annealing(model, config, steps_per_epoch))
    return found + _optimizers.optimizer_spec(config.optimizer).callbacks(model, config, steps_per_epoch)


def compile_model(model: tf.keras.Model, optimizer) -> None:
    """Compile for training: cross-entropy and accuracy; a `Distiller` keeps its own loss."""
    loss = None if isinstance(model, _distillation.Distiller) else "sparse_categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def create_training_variables(model: tf.keras.Model, x, y) -> None:
    """Create, eagerly, every variable `model.fit`'s first step would create inside
    its trace: the loss and metric accumulators and the optimizer's state.

    TensorFlow traces a `tf.function` twice when its first call creates variables;
    with them created here, `fit` traces its training step once (a short digits run
    starts ~2 s sooner). Values are unchanged: the forward pass on `x` (a batch of
    the training inputs, `y` its labels) runs in inference mode and updates nothing.
    """
    y_pred = model(x, training=False)
    model.compiled_loss.build(y_pred)
    model.compiled_metrics.build(y_pred, tf.convert_to_tensor(y))
    _optimizers.create_optimizer_variables(model.optimizer, model.trainable_variables)
