"""Knowledge distillation (`bnnzoo.distillation`): the loss against a hand computation,
the student's gradient against NumPy and finite differences, a frozen teacher,
serialization, the student as the saved artifact, MirroredStrategy, and digits
training where the knowledge demonstrably comes from the teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
from bnnzoo.distillation import DistillationLoss, Distiller, distillation_loss, unwrap, wrap_for_distillation
from bnnzoo.fsg import wrap as fsg_wrap

from _base import Interrupt, _without_build_config, run_model_saving_test

CASES = [(1.0, 1.0), (1.0, 0.0), (4.0, 0.9), (2.0, 0.5), (0.5, 0.3), (8.0, 1.0)]


# --------------------------------------------------------------------------- NumPy references
# Written from the formula on probabilities (softening by p^(1/T), no log-softmax), a
# different route from the implementation's logits.

def _soften(p, temperature):
    q = np.power(p, 1.0 / temperature)
    return q / q.sum(-1, keepdims=True)


def reference_loss(labels, student_p, teacher_p, temperature, alpha):
    """Per-example loss, float64, from probabilities."""
    s, t = student_p.astype(np.float64), teacher_p.astype(np.float64)
    ps, pt = _soften(s, temperature), _soften(t, temperature)
    kl = np.sum(pt * np.log(pt / ps), axis=-1)
    ce = -np.log(s[np.arange(len(s)), np.asarray(labels).reshape(-1)])
    return alpha * temperature**2 * kl + (1 - alpha) * ce


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _batch(seed=0, n=6, classes=4):
    rng = np.random.default_rng(seed)
    student = _softmax(rng.normal(scale=2.0, size=(n, classes))).astype("float32")
    teacher = _softmax(rng.normal(scale=2.0, size=(n, classes))).astype("float32")
    labels = rng.integers(0, classes, size=(n, 1))
    return labels, student, teacher


@pytest.mark.parametrize("temperature,alpha", CASES)
def test_loss_matches_hand_computation(temperature, alpha):
    labels, student, teacher = _batch()
    expected = reference_loss(labels, student, teacher, temperature, alpha)
    got = distillation_loss(labels, student, teacher, temperature=temperature, alpha=alpha).numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    # the same from logits (log-probabilities are logits up to a constant)
    got_logits = distillation_loss(labels, np.log(student), np.log(teacher), temperature=temperature,
                                   alpha=alpha, from_logits=True).numpy()
    np.testing.assert_allclose(got_logits, expected, rtol=2e-5, atol=1e-6)
    # the Keras loss: the (weighted) batch mean
    weights = np.linspace(0.5, 2.0, len(labels)).astype("float32")
    loss = DistillationLoss(temperature=temperature, alpha=alpha)
    assert float(loss((labels, teacher), student)) == pytest.approx(expected.mean(), rel=2e-5)
    assert float(loss((labels, teacher), student, sample_weight=weights)) == pytest.approx(
        np.sum(expected * weights) / len(labels), rel=2e-5)


def test_special_cases_are_keras_cross_entropy_and_kl():
    labels, student, teacher = _batch(seed=3)
    ce = tf.keras.losses.sparse_categorical_crossentropy(labels, student).numpy()
    np.testing.assert_allclose(distillation_loss(labels, student, teacher, alpha=0.0).numpy(), ce, rtol=1e-5)
    kl = tf.keras.losses.kl_divergence(teacher, student).numpy()
    np.testing.assert_allclose(distillation_loss(labels, student, teacher).numpy(), kl, rtol=1e-5)
    # alpha = 1 does not use the labels; the teacher matters
    assert np.all(distillation_loss(labels, teacher, teacher).numpy() < 1e-6)


def test_saturated_softmax_keeps_its_logits():
    """A Keras softmax output is turned back into its logits: a wrong class at
    probability e^-60 costs 60 nats, not the -log(1e-7) = 16.1 of a clipped log."""
    inputs = tf.keras.Input((1,))
    logits = tf.keras.layers.Dense(3, name="logits")(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("softmax")(logits))
    model.get_layer("logits").set_weights([np.array([[30.0, 0.0, -30.0]], "float32"), np.zeros(3, "float32")])
    x, label = np.ones((1, 1), "float32"), np.array([2])
    teacher = np.array([[0.2, 0.3, 0.5]], "float32")

    @tf.function
    def traced(x):
        return distillation_loss(label, model(x), teacher, alpha=0.0)

    for value in (distillation_loss(label, model(x), teacher, alpha=0.0), traced(x)):
        assert float(value[0]) == pytest.approx(60.0, rel=1e-4)
    assert float(distillation_loss(label, model(x).numpy(), teacher, alpha=0.0)[0]) == pytest.approx(
        -np.log(1e-7), rel=1e-4)  # a plain array carries no logits: the documented clipped log


# --------------------------------------------------------------------------- gradients

def _tiny_models(classes=4, features=5, seed=0):
    tf.keras.utils.set_random_seed(seed)
    student = tf.keras.Sequential([tf.keras.Input((features,)), tf.keras.layers.Dense(classes, name="dense"),
                                   tf.keras.layers.Activation("softmax")], name="student")
    teacher = tf.keras.Sequential([tf.keras.Input((features,)), tf.keras.layers.Dense(8, activation="tanh"),
                                   tf.keras.layers.Dense(classes, activation="softmax")], name="teacher")
    return student, teacher


@pytest.mark.parametrize("cached", [False, True], ids=["teacher_per_batch", "teacher_logits_once"])
@pytest.mark.parametrize("temperature,alpha", [(1.0, 1.0), (3.0, 0.6), (2.0, 0.0)])
def test_one_training_step_follows_the_hand_gradient(temperature, alpha, cached):
    """One SGD step of `Distiller.fit` moves the student's kernel by -lr times the
    gradient of the NumPy loss: analytically (dL/ds = alpha T (q_T - p_T) + (1 -
    alpha)(q - onehot)) and by central finite differences of `reference_loss`; the
    same whether the teacher runs on the batch or its logits were computed beforehand."""
    student, teacher = _tiny_models()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5)).astype("float32")
    y = rng.integers(0, 4, size=6)
    kernel, bias = (w.astype(np.float64) for w in student.get_layer("dense").get_weights())
    t_probs = teacher.predict(x, verbose=0).astype(np.float64)

    def loss_of(k, b):
        z = x.astype(np.float64) @ k + b
        return reference_loss(y, _softmax(z), t_probs, temperature, alpha).mean()

    z = x.astype(np.float64) @ kernel + bias
    dz = (alpha * temperature * (_softmax(z / temperature) - _soften(t_probs, temperature))
          + (1 - alpha) * (_softmax(z) - np.eye(4)[y])) / len(x)
    analytic = x.T.astype(np.float64) @ dz
    eps, numeric = 1e-6, np.zeros_like(kernel)
    for index in np.ndindex(*kernel.shape):
        step = np.zeros_like(kernel)
        step[index] = eps
        numeric[index] = (loss_of(kernel + step, bias) - loss_of(kernel - step, bias)) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)

    lr = 0.5
    distiller = Distiller(student, teacher, DistillationLoss(temperature=temperature, alpha=alpha))
    distiller.compile(optimizer=tf.keras.optimizers.legacy.SGD(lr))
    target = (y, distiller.teacher_logits(x)) if cached else y
    logs = distiller.fit(x, target, batch_size=len(x), epochs=1, shuffle=False, verbose=0).history
    assert logs["loss"][0] == pytest.approx(loss_of(kernel, bias), rel=1e-5)
    moved = (kernel - student.get_layer("dense").get_weights()[0]) / lr
    np.testing.assert_allclose(moved, analytic, rtol=1e-4, atol=1e-6)


def test_teacher_is_frozen_and_student_trains(digits):
    student = bnnzoo.models.create("binarynet", input_shape=(8, 8, 1), num_classes=10, width=0.125)
    teacher = _float_teacher(digits, epochs=1)  # has batch norm: its statistics must not move either
    before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    distiller = wrap_for_distillation(student, teacher, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(digits.x_train[:256], digits.y_train[:256], batch_size=64, epochs=1, verbose=0)
    assert not teacher.trainable
    assert {id(v) for v in distiller.trainable_variables} == {id(v) for v in student.trainable_variables}
    for old, new in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert any(not np.array_equal(a, b) for a, b in zip(student_before, student.get_weights()))


@pytest.mark.parametrize("from_logits", [False, True])
def test_teacher_logits_are_the_teachers_outputs_before_its_softmax(from_logits):
    """`teacher_logits` runs the teacher in inference mode in batches: the logits its
    softmax was applied to (for a saturated softmax too), or its outputs as they are
    for a teacher that outputs logits."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(21, 5)).astype("float32")
    tf.keras.utils.set_random_seed(0)
    dense = tf.keras.layers.Dense(4, kernel_initializer=tf.keras.initializers.RandomNormal(stddev=30.0))
    body = tf.keras.Sequential([tf.keras.Input((5,)), tf.keras.layers.BatchNormalization(), dense])
    inputs = tf.keras.Input((5,))
    teacher = body if from_logits else tf.keras.Model(inputs, tf.keras.layers.Activation("softmax")(body(inputs)))
    student = tf.keras.Sequential([tf.keras.Input((5,)), tf.keras.layers.Dense(4, activation="softmax")])
    distiller = wrap_for_distillation(student, teacher, from_logits=from_logits)
    logits = distiller.teacher_logits(x, batch_size=8)  # 3 batches, the last one short
    expected = body(x, training=False).numpy()
    assert logits.shape == (21, 4) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-4)
    assert np.abs(expected).max() > 50  # saturated: probabilities alone would lose these
    with pytest.raises(ValueError, match="batch_size must be an integer in"):
        distiller.teacher_logits(x, batch_size=0)


# --------------------------------------------------------------------------- serialization, artifact

def test_loss_config_round_trip():
    loss = DistillationLoss(temperature=3.5, alpha=0.25, from_logits=True, name="kd")
    config = loss.get_config()
    assert config["temperature"] == 3.5 and config["alpha"] == 0.25 and config["from_logits"] is True
    again = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
    assert isinstance(again, DistillationLoss) and again.get_config() == config
    assert tf.keras.losses.get("DistillationLoss").__class__ is DistillationLoss


def test_distiller_config_round_trip_and_student_artifact(tmp_path):
    student = bnnzoo.models.create("binarynet", input_shape=(8, 8, 1), num_classes=10, width=0.125)
    teacher = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                   tf.keras.layers.Dense(10, activation="softmax")], name="teacher")
    distiller = wrap_for_distillation(student, teacher, temperature=3.0, alpha=0.8)
    config = distiller.get_config()
    clone = Distiller.from_config(json.loads(json.dumps(config)))
    def same(config):  # Keras adds build records to layers once called
        return json.dumps(_without_build_config(config), sort_keys=True)

    assert same(clone.get_config()) == same(config)
    assert clone.distillation_loss.get_config() == distiller.distillation_loss.get_config()
    assert not clone.teacher.trainable
    clone.set_weights(distiller.get_weights())
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(clone.predict(x, verbose=0), student.predict(x, verbose=0))
    # the artifact: the student alone, an ordinary functional model in .keras and .h5
    loaded = run_model_saving_test(unwrap(distiller), tmp_path)
    assert not isinstance(loaded, Distiller) and loaded.name == student.name


def test_checkpoint_restores_student_teacher_and_optimizer(tmp_path):
    """What `train()` checkpoints per epoch: a fresh distiller restored from it has the
    trained student, the teacher and the optimizer's step and slots."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(16, 5)).astype("float32"), rng.integers(0, 4, size=16)

    def build(seed):
        student, teacher = _tiny_models(seed=seed)
        distiller = wrap_for_distillation(student, teacher, temperature=2.0, alpha=0.5)
        distiller.compile(optimizer=tf.keras.optimizers.legacy.Adam(1e-2))
        return distiller

    trained = build(0)
    trained.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).save(str(tmp_path / "ckpt"))
    fresh = build(1)
    bnnzoo.training.create_training_variables(fresh, x[:1], y[:1])  # train() creates them so too
    tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(path).assert_existing_objects_matched()
    for role in ("student", "teacher"):
        for a, b in zip(getattr(trained, role).get_weights(), getattr(fresh, role).get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=role)
    assert int(fresh.optimizer.iterations) == 2
    for a, b in zip(trained.optimizer.get_weights(), fresh.optimizer.get_weights()):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- arguments

def test_shape_mismatch_is_refused_naming_both_shapes():
    student = bnnzoo.models.create("binarynet", input_shape=(8, 8, 1), num_classes=10, width=0.125)
    teacher = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                   tf.keras.layers.Dense(5, activation="softmax")])
    with pytest.raises(ValueError) as error:
        wrap_for_distillation(student, teacher)
    message = str(error.value)
    assert "\n" not in message
    assert "teacher output shape (None, 5)" in message and "student output shape (None, 10)" in message


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": 0.0}, r"^temperature must be a finite number > 0, got 0.0$"),
    ({"temperature": float("nan")}, r"^temperature must be a finite number > 0, got nan$"),
    ({"alpha": -0.1}, r"^alpha must be in \[0, 1\], got -0.1$"),
    ({"alpha": 1.5}, r"^alpha must be in \[0, 1\], got 1.5$"),
    ({"from_logits": "yes"}, r"^from_logits must be True or False, got 'yes'$"),
])
def test_bad_hyperparameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillationLoss(**kwargs)
    if "from_logits" not in kwargs:
        with pytest.raises(ValueError, match=match):
            distillation_loss([0], [[0.5, 0.5]], [[0.5, 0.5]], **kwargs)


def test_other_misuse_is_refused():
    student, teacher = _tiny_models()
    with pytest.raises(ValueError, match="teacher must be another model than the student"):
        Distiller(student, student)
    with pytest.raises(ValueError, match="loss must be a bnnzoo.distillation.DistillationLoss, got "
                                         "SparseCategoricalCrossentropy"):
        Distiller(student, teacher, tf.keras.losses.SparseCategoricalCrossentropy())
    with pytest.raises(ValueError, match="has its own training step"):
        Distiller(fsg_wrap(bnnzoo.models.create("binarynet_mlp", input_shape=(5, 1, 1), num_classes=4,
                                                units=8, hidden_layers=1)), teacher)
    with pytest.raises(ValueError, match="student 'unbuilt' must be built"):
        Distiller(tf.keras.Sequential([tf.keras.layers.Dense(4)], name="unbuilt"), teacher)
    distiller = Distiller(student, teacher)
    with pytest.raises(ValueError, match="loss must be None in Distiller.compile"):
        distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"y_true must be the pair \(labels, teacher_outputs\)"):
        DistillationLoss()(np.array([0]), np.array([[0.5, 0.5]], "float32"))


# --------------------------------------------------------------------------- strategy

@pytest.mark.parametrize("cached", [False, True], ids=["teacher_per_batch", "teacher_logits_once"])
def test_mirrored_step_equals_single_device_step(mirrored_strategy, cached):
    """One SGD step on 2 replicas (4 examples each) equals the same step on one device:
    the loss is each replica's share of the global mean, the metric the global mean
    (with the teacher's logits computed beforehand too)."""
    import larq as lq

    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 6)).astype("float32")
    y = rng.integers(0, 3, size=8)
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored_strategy):
        with strategy.scope():
            tf.keras.utils.set_random_seed(5)
            student = tf.keras.Sequential([
                tf.keras.Input((6,)),
                lq.layers.QuantDense(3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                                     name="binary"),
                tf.keras.layers.Activation("softmax")])
            teacher = tf.keras.Sequential([tf.keras.Input((6,)), tf.keras.layers.Dense(3, activation="softmax")])
            distiller = wrap_for_distillation(student, teacher, temperature=2.0, alpha=0.5)
            distiller.compile(optimizer=tf.keras.optimizers.legacy.SGD(0.1), metrics=["accuracy"])
        target = (y, distiller.teacher_logits(x)) if cached else y
        logs = distiller.fit(x, target, batch_size=8, epochs=1, shuffle=False, verbose=0).history
        results.append((logs["loss"][0], student.get_weights()[0]))
    (loss_one, kernel_one), (loss_two, kernel_two) = results
    assert loss_two == pytest.approx(loss_one, rel=1e-5)
    np.testing.assert_allclose(kernel_two, kernel_one, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- digits

def _float_teacher(digits, epochs):
    tf.keras.utils.set_random_seed(0)
    teacher = tf.keras.Sequential([
        tf.keras.Input(digits.input_shape), tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(64), tf.keras.layers.BatchNormalization(), tf.keras.layers.ReLU(),
        tf.keras.layers.Dense(digits.num_classes, activation="softmax")], name="float_teacher")
    teacher.compile(tf.keras.optimizers.legacy.Adam(1e-2), "sparse_categorical_crossentropy", ["accuracy"])
    teacher.fit(digits.x_train, digits.y_train, batch_size=64, epochs=epochs, verbose=0)
    return teacher


# The distilled student must reach this test accuracy without seeing one true label;
# trained on the same wrong labels by cross-entropy it must stay below CHANCE_BAR.
DISTILLED_BAR = 0.80
CHANCE_BAR = 0.30


def test_student_learns_from_the_teacher_not_the_labels(digits):
    """alpha = 1 (ReActNet's distributional loss): a binary student fitted to randomly
    permuted labels still learns digits, because only the float teacher's outputs
    enter its loss; the same student fitted with alpha = 0 (cross-entropy on those
    labels) does not. The run goes through `bnnzoo.training.create_training_variables`
    as `train()` would."""
    teacher = _float_teacher(digits, epochs=10)
    teacher_accuracy = teacher.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
    assert teacher_accuracy >= 0.9, teacher_accuracy
    wrong = np.random.default_rng(0).permutation(digits.y_train)
    assert np.mean(wrong == digits.y_train) < 0.2
    accuracy = {}
    for alpha in (1.0, 0.0):
        tf.keras.utils.set_random_seed(1)
        student = bnnzoo.models.create("binarynet", input_shape=(8, 8, 1), num_classes=10, width=0.125)
        distiller = wrap_for_distillation(student, teacher, alpha=alpha)
        distiller.compile(optimizer=tf.keras.optimizers.legacy.Adam(1e-2), metrics=["accuracy"])
        bnnzoo.training.create_training_variables(distiller, digits.x_train[:1], wrong[:1])
        history = distiller.fit(digits.x_train, wrong, batch_size=64, epochs=4, verbose=0).history
        assert np.all(np.isfinite(history["loss"]))
        _, accuracy[alpha] = distiller.evaluate(digits.x_test, digits.y_test, verbose=0)
        assert distiller.metrics_names == ["loss", "accuracy"]
    assert accuracy[1.0] >= DISTILLED_BAR, accuracy
    assert accuracy[0.0] < CHANCE_BAR, accuracy


# --------------------------------------------------------------------------- in bnnzoo.training.train
# `TrainConfig.teacher`: the run distills, the run directory keeps the student alone and
# pins the teacher; bad settings are refused when the config is made.

from bnnzoo import cli  # noqa: E402
from bnnzoo.pretrained import sha256_file  # noqa: E402
from bnnzoo.training import RunDirectory, TrainConfig, assemble_run, train  # noqa: E402
from bnnzoo.training.teacher import TEACHER_LOGITS, Teacher, saved_teacher_logits  # noqa: E402

STUDENT = {"epochs": 1, "model_kwargs": {"units": 16, "hidden_layers": 1}}


def _saved_teacher(path, seed=0):
    """A small float model of the digits' shape saved at `path` (a `.keras` file)."""
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(10, activation="softmax")])
    model.save(path)
    return path




def test_train_with_a_teacher_saves_the_student_alone_and_records_the_teacher(tmp_path):
    teacher = _saved_teacher(tmp_path / "teacher.keras")
    config = TrainConfig(**STUDENT, teacher=str(teacher), distillation_kwargs={"temperature": 2.0, "alpha": 0.5})
    result = train(config, tmp_path / "run", verbose=0)
    assert not isinstance(result.model, Distiller)
    # the model file is the student's: no Distiller, no teacher layer in it
    import zipfile

    with zipfile.ZipFile(tmp_path / "run" / "model.keras") as archive:
        saved = archive.read("config.json").decode()
    assert "Distiller" not in saved and "distill" not in saved and '"class_name": "Functional"' in saved
    reloaded = tf.keras.models.load_model(tmp_path / "run" / "model.keras", compile=False)
    fresh = bnnzoo.models.create("binarynet_mlp", input_shape=(8, 8, 1), units=16, hidden_layers=1)
    assert [w.shape for w in reloaded.weights] == [w.shape for w in fresh.weights]
    x = bnnzoo.data.load_arrays("digits").x_test[:32]
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-6)
    record = json.loads((tmp_path / "run" / "teacher.json").read_text())
    assert record == {"source": str(teacher), "kind": "file", "path": str(teacher),
                      "sha256": sha256_file(teacher)}
    assert json.loads((tmp_path / "run" / "config.json").read_text())["distillation_kwargs"] == {
        "temperature": 2.0, "alpha": 0.5}
    # the binary student's measurements, not the teacher's float ones
    assert result.metrics["binary_params"] == bnnzoo.training.model_memory(fresh)["binary_params"] > 0
    assert result.metrics["params"] == fresh.count_params()


def _count_teacher_passes(monkeypatch) -> list[int]:
    """The sizes of the inputs of every `Distiller.teacher_logits` call from now on."""
    calls = []
    original = Distiller.teacher_logits

    def counted(self, x, batch_size=256):
        calls.append(len(x))
        return original(self, x, batch_size)

    monkeypatch.setattr(Distiller, "teacher_logits", counted)
    return calls


def test_train_computes_the_teachers_outputs_once_per_run(tmp_path, monkeypatch):
    """`train` fits a distilled run on (labels, teacher logits) computed once over the
    training set, not the teacher on every batch; a finished run computes nothing."""
    calls = _count_teacher_passes(monkeypatch)
    teacher_calls = []
    teacher = _saved_teacher(tmp_path / "teacher.keras")
    config = TrainConfig(**{**STUDENT, "epochs": 2}, teacher=str(teacher))
    real_train_step = Distiller.train_step

    def spying_train_step(self, data):
        teacher_calls.append(isinstance(data[1], tuple))
        return real_train_step(self, data)

    monkeypatch.setattr(Distiller, "train_step", spying_train_step)
    train(config, tmp_path / "run", verbose=0)
    assert calls == [len(assemble_run(config).arrays.x_train)]
    assert teacher_calls and all(teacher_calls)  # every traced step read cached logits
    train(config, tmp_path / "run", verbose=0)  # finished: resumes with nothing to fit
    assert len(calls) == 1


def test_a_resumed_run_reads_the_teachers_outputs_its_first_start_saved(tmp_path, monkeypatch):
    """An interrupted distilled run resumes on the logits it saved beside its
    checkpoints (no second pass of the teacher), trains to the same weights as an
    unbroken run, and drops the saved logits with its checkpoints when it finishes."""
    calls = _count_teacher_passes(monkeypatch)
    teacher = _saved_teacher(tmp_path / "teacher.keras")
    config = TrainConfig(**{**STUDENT, "epochs": 3}, teacher=str(teacher))
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", verbose=0, callbacks=[Interrupt(1)])
    saved = tmp_path / "run" / "checkpoints" / TEACHER_LOGITS
    assert saved.is_file() and len(calls) == 1
    resumed = train(config, tmp_path / "run", verbose=0)
    assert len(calls) == 1  # read back, not computed again
    assert not saved.exists() and not (tmp_path / "run" / "checkpoints").exists()
    unbroken = train(config, tmp_path / "unbroken", verbose=0)
    assert len(calls) == 2
    for a, b in zip(resumed.model.get_weights(), unbroken.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_saved_teacher_logits_are_recomputed_for_another_teacher_or_other_inputs(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.prepare(TrainConfig(epochs=1))
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    teacher = Teacher("t.keras", "file", "t.keras", "a" * 64)
    calls = []

    def compute(inputs, scale=1.0):
        calls.append(scale)
        return inputs * scale

    np.testing.assert_array_equal(saved_teacher_logits(run, teacher, x, compute), x)
    np.testing.assert_array_equal(saved_teacher_logits(run, teacher, x, lambda v: compute(v, 2.0)), x)
    assert calls == [1.0]  # the same teacher on the same inputs: read back
    other = Teacher("t.keras", "file", "t.keras", "b" * 64)
    np.testing.assert_array_equal(saved_teacher_logits(run, other, x, lambda v: compute(v, 2.0)), 2 * x)
    np.testing.assert_array_equal(saved_teacher_logits(run, other, x + 1, lambda v: compute(v, 3.0)), 3 * (x + 1))
    assert calls == [1.0, 2.0, 3.0]
    (run.checkpoints / TEACHER_LOGITS).write_bytes(b"not an npz")  # unreadable: computed again
    np.testing.assert_array_equal(saved_teacher_logits(run, other, x, lambda v: compute(v, 4.0)), 4 * x)
    assert calls == [1.0, 2.0, 3.0, 4.0]
    fresh = RunDirectory(tmp_path / "fresh")
    fresh.prepare(TrainConfig(epochs=1))
    for scale in (5.0, 6.0):  # no teacher file to key on: computed every time, nothing saved
        np.testing.assert_array_equal(saved_teacher_logits(fresh, None, x, lambda v: compute(v, scale)), scale * x)
    assert calls[-2:] == [5.0, 6.0] and not (fresh.checkpoints / TEACHER_LOGITS).exists()


def test_annealing_and_checkpoint_hold_the_student_only(tmp_path):
    # a binary teacher with annealed quantizers: its quantizers must not be annealed
    teacher_run = tmp_path / "teacher"
    train(TrainConfig(**STUDENT, quantizer="bnnpp"), teacher_run, verbose=0)
    parts = assemble_run(TrainConfig(**STUDENT, quantizer="bnnpp", teacher=str(teacher_run)))
    assert isinstance(parts.model, Distiller) and parts.student is parts.model.student
    annealed = [q for c in parts.callbacks for q in getattr(c, "quantizers", None) or []]
    student_quantizers = {id(getattr(l, "input_quantizer", None)) for l in parts.student.layers} | {
        id(getattr(l, "kernel_quantizer", None)) for l in parts.student.layers}
    assert annealed and all(id(q) in student_quantizers for q in annealed)
    checkpointed = {v.ref() for v in parts.checkpoint.model.variables}
    assert parts.checkpoint.model is parts.student
    assert not any(v.ref() in checkpointed for v in parts.model.teacher.variables)


def test_a_changed_teacher_refuses_resume(tmp_path):
    teacher = _saved_teacher(tmp_path / "teacher.keras")
    config = TrainConfig(**{**STUDENT, "epochs": 2}, teacher=str(teacher))
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", verbose=0, callbacks=[Interrupt(1)])
    before, original = sha256_file(teacher), teacher.read_bytes()
    _saved_teacher(teacher, seed=1)  # the same path, other weights
    with pytest.raises(ValueError) as err:
        train(config, tmp_path / "run", verbose=0)
    message = str(err.value)
    assert message.startswith(f"cannot resume {tmp_path / 'run'}: its teacher {str(teacher)!r} changed since "
                              f"the run started (sha256 {before[:12]}... then, {sha256_file(teacher)[:12]}... now)")
    assert "\n" not in message and (tmp_path / "run" / "checkpoints").is_dir()  # the run is kept
    teacher.write_bytes(original)  # the teacher restored: the run resumes and finishes
    assert len(train(config, tmp_path / "run", verbose=0).history["loss"]) == 2


@pytest.mark.parametrize("kwargs,message", [
    ({"distillation_kwargs": {"alpha": 1.5}}, "distillation_kwargs: alpha must be"),
    ({"distillation_kwargs": {"temperature": 0}}, "distillation_kwargs: temperature must be"),
    ({"distillation_kwargs": {"from_logits": "yes"}}, "distillation_kwargs: from_logits must be True or False"),
    ({"distillation_kwargs": {"temp": 2}},
     "distillation_kwargs has 'temp', which the distillation loss does not take; it takes: "
     "temperature, alpha, from_logits"),
    ({"distillation_kwargs": [1]}, "distillation_kwargs must be a dict of keyword arguments, got [1]"),
    ({"teacher": ""}, "teacher must be a run directory, a .keras/.h5 model file or family:tag"),
    ({"optimizer": "fsg"}, "teacher 'binarynet_mlp:digits' cannot be used with optimizer 'fsg', which trains "
                           "the model with its own training step; use another optimizer or no teacher"),
])
def test_bad_distillation_settings_are_refused_in_one_line(kwargs, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**{"teacher": "binarynet_mlp:digits", **kwargs})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_teacher_sources_resolve_or_are_refused(tmp_path):
    from bnnzoo.training import resolve_teacher

    assert resolve_teacher("binarynet_mlp:digits").kind == "pretrained"
    (tmp_path / "weights.bin").write_bytes(b"x")
    (tmp_path / "unfinished").mkdir()
    for source, needle in ((str(tmp_path / "weights.bin"), "must be a .keras or .h5 model file, got a .bin file"),
                           (str(tmp_path / "unfinished"), "is not a finished run directory"),
                           ("nothing/here", "is neither a finished run directory, a .keras/.h5 model file, "
                                            "nor family:tag of a pretrained artifact (bnnzoo list)"),
                           ("no_such_family:digits", "no_such_family")):
        with pytest.raises(ValueError, match=needle.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
            resolve_teacher(source)
    # refused when the run starts, before its directory is written
    with pytest.raises(ValueError, match="is neither"):
        train(TrainConfig(**STUDENT, teacher="nothing/here"), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_cli_distillation_flags_reach_the_config(tmp_path, capsys):
    args = cli.build_parser().parse_args(["train", "--teacher", "binarynet_mlp:digits",
                                          "--distill-temperature", "4", "--distill-alpha", "0.9"])
    config = cli.config_from_args(args)
    assert config.teacher == "binarynet_mlp:digits"
    assert config.distillation_kwargs == {"temperature": 4.0, "alpha": 0.9}
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--distill-alpha", "0.5", "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2 and capsys.readouterr().err.strip() == (
        "bnnzoo: error: --distill-alpha need a teacher: give --teacher SRC (or teacher in the recipe)")
    with pytest.raises(SystemExit):
        cli.main(["train", "--teacher", "binarynet_mlp:digits", "--distill-alpha", "2",
                  "--out", str(tmp_path / "run")])
    assert "distillation_kwargs: alpha must be" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_card_of_a_distilled_recipe_counts_its_teacher_run(tmp_path, monkeypatch):
    """A recipe distilled from a teacher *run* is published with the teacher as the
    first part of `card.training`: its seconds count in the total, its history is copied."""
    from bnnzoo import pretrained, zoo
    from bnnzoo.training import read_recipe

    monkeypatch.chdir(tmp_path)  # the teacher is named relative to here, as recipes do
    teacher = TrainConfig(epochs=1, model_kwargs={"units": 16, "hidden_layers": 1}, kernel_quantizer="none",
                          input_quantizer="none")
    train(teacher, "teacher-run", verbose=0)
    path = tmp_path / "student.toml"
    path.write_text('model = "binarynet_mlp"\nepochs = 1\nteacher = "teacher-run"\n'
                    'model_kwargs = {units = 16, hidden_layers = 1}\n[artifact]\ntag = "digits-distilled"\n')
    recipe = read_recipe(path)
    train(TrainConfig.from_file(path), "student-run", verbose=0, record={pretrained.RECIPE_RECORD: pretrained.recipe_record(path, recipe)})
    card = zoo.publish_run("student-run", tmp_path / "artifacts")
    parts = card.training["parts"]
    assert [(p["part"], p["run"], p["epochs"]) for p in parts] == [("teacher", "teacher-run", 1),
                                                                   ("run", "student-run", 1)]
    teacher_seconds = json.loads((tmp_path / "teacher-run" / "metrics.json").read_text())["train_seconds"]
    assert parts[0]["train_seconds"] == teacher_seconds > 0
    assert card.training["train_seconds"] == pytest.approx(teacher_seconds + parts[1]["train_seconds"], abs=0.1)
    folder = tmp_path / "artifacts" / "binarynet_mlp" / "digits-distilled"
    assert parts[0]["history_file"] == "history-teacher.json"
    assert json.loads((folder / "history-teacher.json").read_text())["loss"] == \
        json.loads((tmp_path / "teacher-run" / "history.json").read_text())["loss"]
