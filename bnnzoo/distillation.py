"""Knowledge distillation: train a (binary) student against a frozen float teacher.

ReActNet trains its binary networks with a *distributional loss*: the KL divergence
from the class distribution of a real-valued teacher to the student's, in place of
(or, in Hinton et al.'s form, beside) the cross-entropy with the labels. With
student outputs \\(s\\), teacher outputs \\(t\\) (both as logits), labels \\(y\\),
temperature \\(T\\) and weight \\(\\alpha\\), the loss of one example is

\\[
\\mathcal{L} = \\alpha\\, T^2\\, \\mathrm{KL}\\big(\\mathrm{softmax}(t/T) \\,\\|\\, \\mathrm{softmax}(s/T)\\big)
             + (1 - \\alpha)\\, \\mathrm{CE}\\big(y, \\mathrm{softmax}(s)\\big),
\\]

with \\(\\mathrm{KL}(p \\| q) = \\sum_c p_c (\\log p_c - \\log q_c)\\). Its gradient with
respect to the student's logits is

\\[
\\frac{\\partial \\mathcal{L}}{\\partial s} = \\alpha\\, T\\, \\big(\\mathrm{softmax}(s/T) - \\mathrm{softmax}(t/T)\\big)
      + (1 - \\alpha)\\, \\big(\\mathrm{softmax}(s) - \\mathrm{onehot}(y)\\big),
\\]

the \\(T^2\\) keeping the distillation term's gradient of the same order for any
\\(T\\) (Hinton et al.). ReActNet's distributional loss is the case \\(\\alpha = 1,
T = 1\\) (the defaults); \\(\\alpha = 0\\) is plain cross-entropy.

**Probabilities or logits.** Every bnnzoo family ends in a softmax, so by default
(`from_logits=False`) outputs are taken to be probabilities. A probability tensor
made by Keras's softmax carries the logits it came from, and those are used, as
Keras's own cross-entropy does (exact, and a saturated softmax keeps its gradient);
other probabilities enter as \\(\\log \\max(p, \\epsilon)\\), \\(\\epsilon\\) =
`tf.keras.backend.epsilon()` (1e-7), which a softmax turns back into \\(p\\).
Use `from_logits=True` for models that end in a linear layer. Either way the
outputs are one distribution over the classes (a softmax, not independent
sigmoids). Labels are integer class indices, as for `sparse_categorical_crossentropy`.

**Training.** `wrap_for_distillation(student, teacher)` (or `Distiller(student,
teacher, loss)`) returns a `tf.keras.Model` whose `fit` runs the teacher in inference
mode (frozen: `teacher.trainable` is set to False; its batch-norm statistics do not
move) and updates the student only; `evaluate`, `predict` and the metrics are the
student's alone (`val_loss` is the student's cross-entropy: the teacher is not run).
The trained artifact is the student: save `distiller.student` (or `unwrap(model)`),
an ordinary model file that reloads without this module.

!!! example
    ```python
    import tensorflow as tf
    import bnnzoo
    from bnnzoo.distillation import unwrap, wrap_for_distillation

    data = bnnzoo.data.load_arrays("digits")
    teacher = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                   tf.keras.layers.Dense(10, activation="softmax")])
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    student = bnnzoo.models.create("binarynet_mlp", input_shape=(8, 8, 1), units=32, hidden_layers=1)
    model = wrap_for_distillation(student, teacher, temperature=2.0, alpha=0.5)
    model.compile(optimizer="adam", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    unwrap(model).save("student.keras")  # the student alone, an ordinary model file
    ```

References:
    - [Distilling the Knowledge in a Neural Network](https://arxiv.org/abs/1503.02531)
      (Hinton, Vinyals, Dean, NIPS 2014 Deep Learning Workshop, 2015)
    - [ReActNet: Towards Precise Binary Neural Network with Generalized Activation
      Functions](https://arxiv.org/abs/2003.03488) (Liu, Shen, Savvides, Cheng, ECCV 2020)
    - [Training Binary Neural Networks with Real-to-Binary Convolutions](https://arxiv.org/abs/2003.11535)
      (Martinez, Yang, Bulat, Tzimiropoulos, ICLR 2020)
"""

from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from bnnzoo.validation import check_int, check_number, check_positive

MAX_PREDICT_BATCH = 1 << 16  # teacher_logits: larger batches only cost memory

__all__ = ["DistillationLoss", "Distiller", "distillation_loss", "unwrap", "wrap_for_distillation"]


def _logits(outputs, from_logits: bool) -> tf.Tensor:
    """Logits for `outputs` (up to a constant per example, which a softmax ignores)."""
    if from_logits:
        return tf.cast(outputs, tf.float32)
    # Keras's softmax attaches its input to its output; in a graph the op tells too.
    logits = getattr(outputs, "_keras_logits", None)
    if logits is None and not tf.executing_eagerly() and isinstance(outputs, tf.Tensor) \
            and not isinstance(outputs, tf.Variable) and getattr(outputs, "op", None) is not None \
            and outputs.op.type == "Softmax":
        logits = outputs.op.inputs[0]
    if logits is not None:
        return tf.cast(logits, tf.float32)
    probabilities = tf.cast(outputs, tf.float32)
    return tf.math.log(tf.clip_by_value(probabilities, tf.keras.backend.epsilon(), 1.0))


def _labels(labels) -> tf.Tensor:
    return tf.reshape(tf.cast(labels, tf.int32), [-1])


def _cross_entropy(labels, student, from_logits: bool) -> tf.Tensor:
    return tf.nn.sparse_softmax_cross_entropy_with_logits(_labels(labels), _logits(student, from_logits))


def distillation_loss(labels, student, teacher, *, temperature: float = 1.0, alpha: float = 1.0,
                      from_logits: bool = False) -> tf.Tensor:
    """The distillation loss of each example (shape `(batch,)`), unreduced.

    \\[
    \\mathcal{L} = \\alpha\\, T^2\\, \\mathrm{KL}\\big(\\mathrm{softmax}(t/T) \\,\\|\\, \\mathrm{softmax}(s/T)\\big)
                 + (1 - \\alpha)\\, \\mathrm{CE}\\big(y, \\mathrm{softmax}(s)\\big)
    \\]

    Args:
        labels: integer class indices, shape `(batch,)` or `(batch, 1)`.
        student: the student's outputs `(batch, classes)`: probabilities, or logits
            with `from_logits=True`.
        teacher: the teacher's outputs, of the same shape and kind as `student`
            (no gradient flows into them).
        temperature: \\(T > 0\\), softening both distributions in the KL term.
        alpha: \\(\\alpha \\in [0, 1]\\), the weight of the KL term (1: ReActNet's
            distributional loss, labels unused; 0: plain cross-entropy).
        from_logits: whether `student` and `teacher` are logits.

    Raises:
        ValueError: `temperature` or `alpha` out of range.

    !!! example
        ```python
        import numpy as np
        from bnnzoo.distillation import distillation_loss

        student = np.array([[0.7, 0.2, 0.1]], "float32")
        teacher = np.array([[0.6, 0.3, 0.1]], "float32")
        kl = np.sum(teacher * np.log(teacher / student))
        loss = distillation_loss([0], student, teacher, temperature=1.0, alpha=1.0)
        np.testing.assert_allclose(loss.numpy(), [kl], rtol=1e-5)
        ```
    """
    temperature = check_positive("temperature", temperature)
    alpha = check_number("alpha", alpha, low=0.0, high=1.0)
    return _loss_of_logits(labels, _logits(student, from_logits), _logits(teacher, from_logits),
                           temperature, alpha)


def _loss_of_logits(labels, s, t, temperature: float, alpha: float) -> tf.Tensor:
    """`distillation_loss` of the student's logits `s` and the teacher's logits `t`."""
    t = tf.stop_gradient(tf.cast(t, tf.float32))
    log_q = tf.nn.log_softmax(s / temperature, axis=-1)
    log_p = tf.nn.log_softmax(t / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
    loss = alpha * temperature**2 * kl
    if alpha < 1.0:  # with alpha = 1 the labels are not needed (nor checked)
        loss += (1.0 - alpha) * tf.nn.sparse_softmax_cross_entropy_with_logits(_labels(labels), s)
    return loss


@lq.utils.register_keras_custom_object
class DistillationLoss(tf.keras.losses.Loss):
    """Hinton's knowledge-distillation loss; ReActNet's distributional loss by default.

    \\[
    \\mathcal{L} = \\alpha\\, T^2\\, \\mathrm{KL}\\big(\\mathrm{softmax}(t/T) \\,\\|\\, \\mathrm{softmax}(s/T)\\big)
                 + (1 - \\alpha)\\, \\mathrm{CE}\\big(y, \\mathrm{softmax}(s)\\big)
    \\]

    Gradient with respect to the student's logits \\(s\\):
    \\(\\alpha T (\\mathrm{softmax}(s/T) - \\mathrm{softmax}(t/T)) + (1 - \\alpha)(\\mathrm{softmax}(s) - \\mathrm{onehot}(y))\\).

    Called as `loss((labels, teacher_outputs), student_outputs, sample_weight=None)`:
    the target is the pair of the labels and the teacher's outputs (see
    `distillation_loss` for shapes). `Distiller` calls it that way; it is not meant
    for `model.compile(loss=...)` of a plain model, whose target is the labels alone.

    Args:
        temperature: \\(T > 0\\) (Hinton et al. use 1-20; ReActNet 1).
        alpha: \\(\\alpha \\in [0, 1]\\), the weight of the distillation term.
        from_logits: whether the models output logits (bnnzoo families output
            softmax probabilities: False).
        reduction: Keras's reduction of the per-example losses.
        name: the loss's name.

    Raises:
        ValueError: `temperature` or `alpha` out of range.

    !!! example
        ```python
        import numpy as np
        import tensorflow as tf
        from bnnzoo.distillation import DistillationLoss

        loss = DistillationLoss(temperature=4.0, alpha=0.9)
        labels = np.array([0, 2])
        student = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], "float32")
        teacher = np.array([[0.8, 0.1, 0.1], [0.2, 0.1, 0.7]], "float32")
        print(float(loss((labels, teacher), student)))
        same = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
        assert same.get_config() == loss.get_config()
        ```

    References:
        - [Distilling the Knowledge in a Neural Network](https://arxiv.org/abs/1503.02531)
          (Hinton, Vinyals, Dean, 2015)
        - [ReActNet: Towards Precise Binary Neural Network with Generalized Activation
          Functions](https://arxiv.org/abs/2003.03488) (Liu et al., ECCV 2020)
    """

    def __init__(self, temperature: float = 1.0, alpha: float = 1.0, from_logits: bool = False,
                 reduction=tf.keras.losses.Reduction.AUTO, name: str = "distillation_loss"):
        super().__init__(reduction=reduction, name=name)
        self.temperature = check_positive("temperature", temperature)
        self.alpha = check_number("alpha", alpha, low=0.0, high=1.0)
        if not isinstance(from_logits, bool):
            raise ValueError(f"from_logits must be True or False, got {from_logits!r}")
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        """Per-example losses; `y_true` is the pair `(labels, teacher_outputs)`."""
        if not isinstance(y_true, (tuple, list)) or len(y_true) != 2:
            raise ValueError("y_true must be the pair (labels, teacher_outputs), got "
                             f"{type(y_true).__name__} {getattr(y_true, 'shape', '')}".rstrip())
        labels, teacher = y_true
        return distillation_loss(labels, y_pred, teacher, temperature=self.temperature, alpha=self.alpha,
                                 from_logits=self.from_logits)

    def from_teacher_logits(self, labels, teacher_logits, y_pred) -> tf.Tensor:
        """Per-example losses with the teacher's outputs given as logits (as
        `teacher_logits` computes them), whatever `from_logits` says of the student's."""
        return _loss_of_logits(labels, _logits(y_pred, self.from_logits), teacher_logits,
                               self.temperature, self.alpha)

    def cross_entropy(self, labels, y_pred) -> tf.Tensor:
        """The student's own per-example cross-entropy with `labels` (what validation reports)."""
        return _cross_entropy(labels, y_pred, self.from_logits)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha,
                "from_logits": self.from_logits}


def _one_output_shape(role: str, model) -> tuple:
    if not isinstance(model, tf.keras.Model):
        raise ValueError(f"{role} must be a tf.keras.Model, got {type(model).__name__}")
    try:
        shape = model.output_shape
    except (AttributeError, RuntimeError):
        raise ValueError(f"{role} {model.name!r} must be built (give it an Input or call it on a batch) "
                         "so that its output shape is known") from None
    if not isinstance(shape, tuple) or (shape and isinstance(shape[0], (tuple, list))):
        raise ValueError(f"{role} {model.name!r} must have one output, got output shapes {shape}")
    return shape


def _own_train_step(model) -> bool:
    return type(model).train_step is not tf.keras.Model.train_step


@lq.utils.register_keras_custom_object
class Distiller(tf.keras.Model):
    """A student trained against a frozen teacher; inference is the student's alone.

    `fit` runs, per batch, the teacher in inference mode (`training=False`; the
    teacher is frozen: `teacher.trainable` is set to False) and the student in
    training mode, and minimizes `loss((y, teacher(x)), student(x))` plus the
    student's regularization losses over the student's trainable variables. Fit on
    `(x, (labels, logits))` with `logits = distiller.teacher_logits(x)` to compute
    the teacher's outputs once instead of on every batch (the same loss, for inputs
    that are not augmented between epochs; `bnnzoo.train` does so). The
    reported `loss` is that distillation loss; `evaluate`, `predict` and `__call__`
    run the student only, and `val_loss` is the student's cross-entropy with the
    labels (plus its regularization losses), comparable with a plain model's. The
    metrics given to `compile` are computed on the student's outputs.

    Compile with an optimizer and metrics only: the loss is the one given here.
    Under a `tf.distribute` strategy, build the student, the teacher and the
    `Distiller` inside `strategy.scope()`; each replica's loss is its share of the
    global batch mean, as Keras's built-in loss does it.

    The artifact is the student: `distiller.student.save(path)` (`.keras` or `.h5`)
    writes an ordinary model that reloads without this module. The `Distiller`
    itself is serializable (`get_config`/`from_config` hold both architectures and
    the loss), and checkpoints (`tf.train.Checkpoint(model=distiller)`) hold both
    models' weights.

    Args:
        student: the model trained; a built Keras model with one output.
        teacher: a built Keras model with one output of the student's shape (a
            float model, typically of another architecture, trained beforehand).
        loss: a `DistillationLoss` (or its serialized form); default
            `DistillationLoss()` (ReActNet: \\(\\alpha = 1, T = 1\\)).
        name: the model's name.

    Raises:
        ValueError: the output shapes differ (the message names both), the teacher
            is the student, either model is not a built single-output Keras model,
            the student has its own training step (e.g. an `FSGModel`), or `loss`
            is not a `DistillationLoss`.

    !!! example
        ```python
        import tensorflow as tf
        import bnnzoo
        from bnnzoo.distillation import DistillationLoss, Distiller

        data = bnnzoo.data.load_arrays("digits")
        student = bnnzoo.models.create("binarynet", input_shape=(8, 8, 1), num_classes=10, width=0.125)
        teacher = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                       tf.keras.layers.Dense(10, activation="softmax")])
        distiller = Distiller(student, teacher, DistillationLoss(temperature=4.0, alpha=0.7))
        distiller.compile(optimizer="adam", metrics=["accuracy"])
        distiller.fit(data.x_train[:256], data.y_train[:256], epochs=1, verbose=0)
        loss, accuracy = distiller.evaluate(data.x_test, data.y_test, verbose=0)  # the student's
        distiller.student.save("student.h5")
        ```
    """

    def __init__(self, student: tf.keras.Model, teacher: tf.keras.Model, loss=None, name: str = "distiller",
                 **kwargs):
        if isinstance(student, dict):  # from_config / load_model
            student = tf.keras.saving.deserialize_keras_object(student)
        if isinstance(teacher, dict):
            teacher = tf.keras.saving.deserialize_keras_object(teacher)
        if isinstance(loss, dict):
            loss = tf.keras.losses.deserialize(loss)
        loss = DistillationLoss() if loss is None else loss
        if not isinstance(loss, DistillationLoss):
            raise ValueError(f"loss must be a bnnzoo.distillation.DistillationLoss, got {type(loss).__name__}")
        student_shape = _one_output_shape("student", student)
        teacher_shape = _one_output_shape("teacher", teacher)
        if teacher is student:
            raise ValueError(f"teacher must be another model than the student, got {student.name!r} for both")
        if tuple(teacher_shape[1:]) != tuple(student_shape[1:]):
            raise ValueError(f"teacher output shape {teacher_shape} does not match the student output "
                             f"shape {student_shape}: both must give one score per class")
        if _own_train_step(student):
            raise ValueError(f"student {student.name!r} ({type(student).__name__}) has its own training step, "
                             "which a Distiller would bypass; distill the plain model")
        super().__init__(name=name, **kwargs)
        teacher.trainable = False
        self.student = student
        self.teacher = teacher
        self.distillation_loss = loss
        self._loss_tracker = tf.keras.metrics.Mean(name="loss")

    def call(self, inputs, training=None):
        """The student's outputs (the teacher is not run)."""
        return self.student(inputs, training=training)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Keras's `compile` without `loss` (the `Distiller`'s loss is fixed at construction)."""
        if loss is not None:
            raise ValueError(f"loss must be None in Distiller.compile (give the loss to Distiller(..., loss=)), "
                             f"got {loss!r}")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        # Keras skips models with a custom compile() unless this is overridden.
        config = tf.keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        self.compile(**config)

    @property
    def metrics(self):
        compiled = getattr(self, "compiled_metrics", None)
        return [self._loss_tracker, *(compiled.metrics if compiled is not None else [])]

    def _mean_loss(self, per_example, sample_weight, regularization):
        """(the replica's share of the global mean loss, the local mean for the `loss` metric)."""
        if sample_weight is not None:
            per_example = per_example * tf.reshape(tf.cast(sample_weight, per_example.dtype),
                                                   tf.shape(per_example))
        local_mean = tf.reduce_sum(per_example) / tf.cast(tf.size(per_example), per_example.dtype)
        share = tf.nn.compute_average_loss(per_example)
        if regularization:
            total = tf.add_n([tf.cast(r, per_example.dtype) for r in regularization])
            local_mean += total
            share += tf.nn.scale_regularization_loss(total)
        return share, local_mean

    def _metrics_result(self, x, y, y_pred, sample_weight, local_mean):
        self._loss_tracker.update_state(local_mean, sample_weight=tf.shape(y_pred)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def teacher_logits(self, x, batch_size: int = 256) -> np.ndarray:
        """The teacher's outputs on `x` as logits, in inference mode, `(len(x), classes)`.

        The teacher is frozen, so for inputs that reach the model unchanged every
        epoch (no augmentation, as in `bnnzoo.train`) its outputs are fixed: compute
        them once and fit on `(x, (labels, logits))`, which `train_step` reads in
        place of running the teacher on every batch.

        !!! example
            ```python
            import numpy as np
            import tensorflow as tf
            import bnnzoo
            from bnnzoo.distillation import wrap_for_distillation

            data = bnnzoo.data.load_arrays("digits")
            teacher = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                           tf.keras.layers.Dense(10, activation="softmax")])
            student = bnnzoo.models.create("binarynet_mlp", input_shape=(8, 8, 1), units=16, hidden_layers=1)
            model = wrap_for_distillation(student, teacher)
            logits = model.teacher_logits(data.x_train)
            np.testing.assert_allclose(tf.nn.softmax(logits), teacher.predict(data.x_train, verbose=0),
                                       atol=1e-6)
            model.compile(optimizer="adam")
            model.fit(data.x_train, (data.y_train, logits), epochs=1, verbose=0)
            ```
        """
        check_int("batch_size", batch_size, 1, MAX_PREDICT_BATCH)
        run = tf.function(lambda batch: _logits(self.teacher(batch, training=False),
                                                self.distillation_loss.from_logits))
        x = np.asarray(x)
        parts = [run(tf.constant(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
        classes = int(self.teacher.output_shape[-1])
        return np.concatenate(parts) if parts else np.zeros((0, classes), np.float32)

    def train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(y, (tuple, list)):  # (labels, the teacher's logits from teacher_logits)
            y, teacher_logits = y

            def loss_of(y_pred):
                return self.distillation_loss.from_teacher_logits(y, teacher_logits, y_pred)
        else:
            # No tf.stop_gradient here: it would hide the logits Keras's softmax attaches to
            # its output; distillation_loss stops the teacher's gradient itself.
            teacher_out = self.teacher(x, training=False)

            def loss_of(y_pred):
                return self.distillation_loss.call((y, teacher_out), y_pred)
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = self.student(x, training=True)
            loss, local_mean = self._mean_loss(loss_of(y_pred), sample_weight, self.student.losses)
        self.optimizer.minimize(loss, variables, tape=tape)
        return self._metrics_result(x, y, y_pred, sample_weight, local_mean)

    def test_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self.student(x, training=False)
        per_example = self.distillation_loss.cross_entropy(y, y_pred)
        _, local_mean = self._mean_loss(per_example, sample_weight, self.student.losses)
        return self._metrics_result(x, y, y_pred, sample_weight, local_mean)

    def get_config(self):
        return {
            "student": tf.keras.saving.serialize_keras_object(self.student),
            "teacher": tf.keras.saving.serialize_keras_object(self.teacher),
            "loss": tf.keras.losses.serialize(self.distillation_loss),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        with tf.keras.saving.custom_object_scope(custom_objects or {}):
            return cls(**config)


def wrap_for_distillation(model: tf.keras.Model, teacher: tf.keras.Model, *, temperature: float = 1.0,
                          alpha: float = 1.0, from_logits: bool = False) -> Distiller:
    """`model` as a student distilled from `teacher`: a `Distiller` with a `DistillationLoss`.

    What the training routine calls, like `bnnzoo.fsg.wrap` for FSG: build the
    student, load its initial weights, wrap it, compile with an optimizer and
    metrics, fit; then `unwrap` gives the student to save, evaluate and export.

    Args:
        model: the student, a built single-output Keras model (any bnnzoo family).
        teacher: the trained teacher, with outputs of the student's shape; frozen here.
        temperature: \\(T > 0\\) of `DistillationLoss`.
        alpha: \\(\\alpha \\in [0, 1]\\) of `DistillationLoss` (1: ReActNet's
            distributional loss; 0: cross-entropy only, the teacher then only costs time).
        from_logits: whether both models output logits (bnnzoo families: False).

    Returns:
        A `Distiller` sharing `model`'s and `teacher`'s layers (not copies).

    Raises:
        ValueError: as `DistillationLoss` and `Distiller` (e.g. the teacher's output
            shape differs from the student's; the message names both).

    !!! example
        ```python
        import tensorflow as tf
        import bnnzoo
        from bnnzoo.distillation import wrap_for_distillation

        student = bnnzoo.models.create("binarynet_mlp", input_shape=(8, 8, 1), units=16, hidden_layers=1)
        teacher = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                       tf.keras.layers.Dense(5, activation="softmax")])
        try:
            wrap_for_distillation(student, teacher)
        except ValueError as err:
            assert str(err).startswith(
                "teacher output shape (None, 5) does not match the student output shape (None, 10)")
        else:
            raise AssertionError("a 5-class teacher was accepted for a 10-class student")
        ```
    """
    loss = DistillationLoss(temperature=temperature, alpha=alpha, from_logits=from_logits)
    return Distiller(model, teacher, loss, name=f"{model.name}_distilled")


def unwrap(model: tf.keras.Model) -> tf.keras.Model:
    """The student of a `Distiller` (the model to save, evaluate and export); any other model as it is.

    !!! example
        ```python
        import tensorflow as tf
        import bnnzoo
        from bnnzoo.distillation import unwrap, wrap_for_distillation

        student = bnnzoo.models.create("binarynet_mlp", input_shape=(8, 8, 1), units=16, hidden_layers=1)
        teacher = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                       tf.keras.layers.Dense(10, activation="softmax")])
        assert unwrap(wrap_for_distillation(student, teacher)) is student
        assert unwrap(student) is student
        ```
    """
    return model.student if isinstance(model, Distiller) else model
