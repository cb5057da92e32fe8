"""keras-tuner tuners whose trials are bnnzoo runs.

`make_tuner("random" | "hyperband" | "bayesian", hypermodel, ...)` returns a
keras-tuner tuner whose `run_trial` trains each trial through the hypermodel's
`fit` (so through `bnnzoo.training.train`) into `<project>/trial_<id>/run`, a
normal run directory. A trial that is interrupted resumes from that directory's
epoch checkpoint when keras-tuner retries it after a restart.

Hyperband trials train from scratch for their bracket's epoch budget (the shared
routine starts each run from its config, not from another trial's weights).

Seeds: a search's seed `S` fixes its oracle's draws through `oracle_seed(S)`
(see `make_tuner` for what is reproducible and what is not); every trial trains
with the `TrainConfig` seed, which `run_search` sets to the same `S`.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import time

import keras_tuner as kt
import numpy as np
import tensorflow as tf
from keras_tuner.engine import trial as _trial_module
from keras_tuner.src.distribute import utils as _dist_utils  # no public equivalent: see distributed.py

from bnnzoo import training as _training
from bnnzoo.registry import Registry
from bnnzoo.tuning.hypermodel import OBJECTIVE, BNNHyperModel
from bnnzoo.validation import check_int

__all__ = ["TUNERS", "list_tuners", "make_tuner", "format_hp_values", "oracle_seed", "SEED_LIMIT"]

RUN_SUBDIR = "run"

# A search's seed has the range of `TrainConfig.seed`, since its trials train with it.
SEED_LIMIT = 2**32


def oracle_seed(seed: int) -> int:
    """The keras-tuner oracle seed of a bnnzoo search seed `seed` (an integer in [1, 2**31)).

    Not `seed` itself, for two reasons. keras-tuner replaces a seed of 0 (bnnzoo's
    default) by `random.randint(1, 10000)`, so a search with seed 0 drew different
    trials on every run. And keras-tuner draws the k-th value of a search with seed
    `s` from `random.Random(s + k)`, so searches with nearby seeds share draws,
    shifted: seed `s + m` repeats seed `s`'s draws from its m-th value on (with m
    values drawn per trial, its first trial is seed `s`'s second). A hash of `seed` spread
    over [1, 2**31) is never 0, and two seeds' streams practically never overlap.

    Args:
        seed: the search's seed, an integer in [0, 2**32).

    Returns:
        A deterministic integer in [1, 2**31): the same for the same `seed` on every
        machine and Python version.

    !!! example
        ```python
        from bnnzoo.tuning.tuners import oracle_seed

        assert oracle_seed(0) == oracle_seed(0) != oracle_seed(1)
        assert 1 <= oracle_seed(0) < 2**31
        ```
    """
    digest = hashlib.sha256(f"bnnzoo tune seed {check_int('seed', seed, 0, SEED_LIMIT - 1)}".encode()).digest()
    return 1 + int.from_bytes(digest[:8], "big") % (2**31 - 1)


def format_hp_values(values: dict, skip_tuner_keys: bool = True) -> str:
    parts = []
    for key, value in values.items():
        if skip_tuner_keys and key.startswith("tuner/"):
            continue
        if isinstance(value, float):
            value = f"{value:.3g}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def _creation_order(trial_id: str):
    """Sort key of keras-tuner's trial ids: their number (`"07"` < `"10"`), others after."""
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)


class _BNNTunerMixin:
    """Runs trials through `BNNHyperModel.fit`, prints a line per trial, and (in
    distributed mode) heartbeats to the chief and waits politely when idle."""

    heartbeat_seconds: float = 0.0  # > 0 on distributed workers

    def run_trial(self, trial, *args, **kwargs):
        stop = threading.Event()
        beat = None
        if self.heartbeat_seconds > 0:
            beat = threading.Thread(target=self._heartbeat, args=(trial.trial_id, stop), daemon=True)
            beat.start()
        try:
            tf.keras.backend.clear_session()
            gc.collect()
            kwargs.pop("epochs", None)  # Hyperband's budget is read from the trial's hp
            kwargs.pop("initial_epoch", None)
            out = os.path.join(self.get_trial_dir(trial.trial_id), RUN_SUBDIR)
            return self.hypermodel.fit(trial.hyperparameters, None, out=out, **kwargs)
        finally:
            stop.set()
            if beat is not None:
                beat.join()

    # keras-tuner checks models against its own `keras`, which is Keras 3 on the TF 2.19
    # stack, while bnnzoo's models are tf.keras (tf-keras) models there. These two
    # replace the paths that check (`_try_build`) or read keras-tuner's own checkpoint
    # (`load_model`, used by `get_best_models`), which bnnzoo's run_trial never writes.
    def _try_build(self, hp):
        tf.keras.backend.clear_session()
        gc.collect()
        model = self._build_hypermodel(hp)
        if not isinstance(model, tf.keras.Model):
            raise kt.errors.FatalTypeError(
                f"HyperModel.build() must return a tf.keras Model, got {model!r} of type {type(model)}"
            )
        if self.max_model_size and model.count_params() > self.max_model_size:
            raise kt.errors.FailedTrialError(f"Oversized model: {model.count_params()} parameters. Skip model.")
        return model

    def reload(self):
        """keras-tuner's reload, with the oracle's trials back in the order they were created.

        keras-tuner reads them back in file-system order (a glob), and the Bayesian
        oracle fits its Gaussian process to them in that order, and the best trial
        among equal scores is the first in it: in creation order (trial ids
        `0, 1, ...`), a resumed search proposes and ranks as an unbroken one does.
        """
        super().reload()
        if self._is_worker():  # a worker's oracle is the chief's
            return
        trials = self.oracle.trials
        self.oracle.trials = {tid: trials[tid] for tid in sorted(trials, key=_creation_order)}

    def load_model(self, trial):
        """The trained model of `trial`, from its run directory (`<trial dir>/run/model.keras`)."""
        return _training.load_model(os.path.join(self.get_trial_dir(trial.trial_id), RUN_SUBDIR))

    def _heartbeat(self, trial_id, stop: threading.Event):
        while not stop.wait(self.heartbeat_seconds):
            try:
                self.oracle.get_trial(trial_id)  # the chief notes the contact
            except Exception:  # the main thread reports a lost chief
                return

    def on_trial_begin(self, trial):
        self._trial_started = time.perf_counter()
        super().on_trial_begin(trial)
        where = f" on {self.tuner_id}" if _dist_utils.has_chief_oracle() else ""
        print(f"[tune] trial {trial.trial_id} started{where}: "
              f"{format_hp_values(trial.hyperparameters.values)}", flush=True)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        seconds = time.perf_counter() - getattr(self, "_trial_started", time.perf_counter())
        done = self.oracle.get_trial(trial.trial_id)
        metrics = done.metrics.metrics
        parts = [f"{name} {metrics[name].get_last_value():.4f}"
                 for name in (OBJECTIVE, "test_accuracy") if name in metrics]
        best = self.oracle.get_best_trials(1)
        best_text = (f" | best {best[0].score:.4f} (trial {best[0].trial_id})"
                     if best and best[0].score is not None else "")
        status = done.status if done.status != _trial_module.TrialStatus.COMPLETED else "done"
        total = getattr(self.oracle, "max_trials", None)
        print(f"[tune] trial {trial.trial_id}{f'/{total}' if total else ''} {status} "
              f"[{seconds:.1f} s]: {'  '.join(parts)}{best_text}", flush=True)
        if done.status in (_trial_module.TrialStatus.FAILED, _trial_module.TrialStatus.INVALID):
            lines = (trial.message or "").strip().splitlines()
            print(f"[tune]   {lines[-1] if lines else 'no message'}", flush=True)

    def search(self, *fit_args, **fit_kwargs):
        """keras-tuner's search loop, with bnnzoo's chief server and an idle back-off."""
        if "verbose" in fit_kwargs and not self._is_worker():
            self.oracle.verbose = fit_kwargs["verbose"]  # keras-tuner's own per-trial tables
        if _dist_utils.is_chief_oracle():
            from bnnzoo.tuning import distributed

            self.save()
            self.chief_servicer = distributed.serve_oracle(self.oracle, **getattr(self, "chief_options", {}))
            return
        self.on_search_begin()
        while True:
            self.pre_create_trial()
            trial = self.oracle.create_trial(self.tuner_id)
            if trial.status == _trial_module.TrialStatus.STOPPED:
                break
            if trial.status == _trial_module.TrialStatus.IDLE:
                time.sleep(1.0)  # the chief holds this worker while others may still fail
                continue
            self.on_trial_begin(trial)
            self._try_run_and_update_trial(trial, *fit_args, **fit_kwargs)
            self.on_trial_end(trial)
        self.on_search_end()


class RandomSearch(_BNNTunerMixin, kt.RandomSearch):
    """`keras_tuner.RandomSearch` over bnnzoo runs."""


class Hyperband(_BNNTunerMixin, kt.Hyperband):
    """`keras_tuner.Hyperband` over bnnzoo runs (`max_epochs` = the search's epochs)."""


class _BayesianOracle(kt.oracles.BayesianOptimizationOracle):
    """keras-tuner's Gaussian-process oracle with restarts that a resumed search repeats.

    keras-tuner seeds the generator of the acquisition search's starting points once,
    when the oracle is built, and does not save it with the oracle's state: a search
    interrupted and resumed would draw other starting points, and so possibly
    propose other trials, than the same search run without a break. Here the
    generator is seeded before each proposal from the oracle seed and the number of
    trials created so far, which the saved state holds. (The random initial points
    come from keras-tuner's saved seed counter, as in the other tuners; the Gaussian
    process itself is fitted with `random_state=seed`, deterministic already.)
    """

    def populate_space(self, trial_id):
        self._random_state = np.random.RandomState(_proposal_seed(self.seed, len(self.trials)))
        return super().populate_space(trial_id)


def _proposal_seed(seed: int, trials: int) -> int:
    digest = hashlib.sha256(f"bnnzoo bayesian proposal {seed} {trials}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class BayesianOptimization(_BNNTunerMixin, kt.Tuner):
    """keras-tuner's Bayesian optimization over bnnzoo runs, with `_BayesianOracle`.

    Args:
        hypermodel: the `BNNHyperModel`.
        objective, max_trials, num_initial_points, seed, max_consecutive_failed_trials:
            the oracle's options, as for `keras_tuner.BayesianOptimization`.
        **kwargs: `keras_tuner.Tuner`'s options (`directory`, `project_name`, `overwrite`...).
    """

    def __init__(self, hypermodel=None, *, objective=None, max_trials=10, num_initial_points=None, seed=None,
                 max_consecutive_failed_trials=3, **kwargs):
        oracle = _BayesianOracle(objective=objective, max_trials=max_trials, num_initial_points=num_initial_points,
                                 seed=seed, max_consecutive_failed_trials=max_consecutive_failed_trials)
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)


TUNERS: Registry = Registry("tuner")
TUNERS.register("random", RandomSearch)
TUNERS.register("hyperband", Hyperband)
TUNERS.register("bayesian", BayesianOptimization)


def list_tuners() -> list[str]:
    return TUNERS.names()


def make_tuner(name: str, hypermodel: BNNHyperModel, *, max_trials: int, directory: str,
               project_name: str = "search", seed: int | None = None, overwrite: bool = False):
    """A tuner of kind `name` (`list_tuners()`) searching `hypermodel`.

    With `overwrite=False` (the default) an existing project in
    `directory/project_name` is reloaded: finished trials are kept and an
    interrupted one is retried (resuming from its run directory). A reloaded
    project keeps the oracle seed it was created with.

    Reproducibility: two searches with the same `seed`, hypermodel (space, base
    config, registered optimizers and quantizers) and `max_trials`, run one
    process at a time, create the same trials in the same order, with the same
    hyperparameter values, whatever directory they write to, also when one of them
    was interrupted and resumed:

    * `random`: trial k's values are the k-th draws of the oracle's seeded stream
      (`oracle_seed(seed)`), whatever the scores.
    * `hyperband`: the brackets come in a fixed order and their new trials are the
      same seeded draws; which trials a round promotes depends on the scores.
    * `bayesian`: the first `max(3, max_trials // 3)` trials are seeded draws; later
      ones are proposed from the scores (a Gaussian process fitted with a fixed
      seed, and restarts seeded from the seed and trial count).

    Scores are reproducible where training is: every trial trains with
    `hypermodel.base.seed` (`bnnzoo.training.train` seeds Python, NumPy and
    TensorFlow with it and turns on TensorFlow's deterministic ops), so trial k
    of both searches starts from the same weights and sees the batches in the
    same order. The same scores, and so the same promotions and Bayesian
    proposals, need the same machine type and software stack: other hardware or
    library versions may round differently. In keras-tuner's chief/worker mode
    only the random draws are tied to the seed, not the order in which workers
    finish, which hyperband and bayesian decisions depend on (see the tuning docs).

    Args:
        name: `random`, `hyperband` or `bayesian`.
        hypermodel: the `BNNHyperModel` to search.
        max_trials: number of trials (> 0); also caps Hyperband's brackets.
        directory / project_name: where keras-tuner keeps its project.
        seed: the search's seed, an integer in [0, 2**32); default
            `hypermodel.base.seed`, the seed the trials train with. The oracle is
            seeded with `oracle_seed(seed)`.
        overwrite: start afresh instead of reloading an existing project.

    Returns:
        The keras-tuner tuner (`tuner.search(verbose=0)` runs it).

    Raises:
        ValueError: an unknown `name`, `max_trials` not a positive integer, or
            `seed` not an integer in [0, 2**32).
    """
    TUNERS.get(name)  # ValueError listing the valid names
    if not (isinstance(max_trials, int) and max_trials > 0):
        raise ValueError(f"max_trials must be a positive integer, got {max_trials!r}")
    seed = hypermodel.base.seed if seed is None else seed
    objective = kt.Objective(OBJECTIVE, direction="max")
    common = dict(objective=objective, seed=oracle_seed(seed), directory=directory, project_name=project_name,
                  overwrite=overwrite, max_consecutive_failed_trials=max_trials)
    if name == "hyperband":
        tuner = Hyperband(hypermodel, max_epochs=max(hypermodel.base.epochs, 1), factor=3,
                          hyperband_iterations=1, **common)
        tuner.oracle.max_trials = max_trials  # cap the brackets at the requested count
    elif name == "bayesian":
        # keras-tuner's default (3 random points per hyperparameter, fixed ones
        # included) would leave short searches entirely random.
        tuner = BayesianOptimization(hypermodel, max_trials=max_trials,
                                     num_initial_points=max(3, max_trials // 3), **common)
    else:
        tuner = RandomSearch(hypermodel, max_trials=max_trials, **common)
    return tuner
