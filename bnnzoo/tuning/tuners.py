"""keras-tuner tuners whose trials are bnnzoo runs.

`make_tuner("random" | "hyperband" | "bayesian", hypermodel, ...)` returns a
keras-tuner tuner whose `run_trial` trains each trial through the hypermodel's
`fit` (so through `bnnzoo.training.train`) into `<project>/trial_<id>/run`, a
normal run directory. A trial that is interrupted resumes from that directory's
epoch checkpoint when keras-tuner retries it after a restart.

Hyperband trials train from scratch for their bracket's epoch budget (the shared
routine starts each run from its config, not from another trial's weights).
"""

from __future__ import annotations

import gc
import os
import threading
import time

import keras_tuner as kt
import tensorflow as tf
from keras_tuner.engine import trial as _trial_module
from keras_tuner.src.distribute import utils as _dist_utils  # no public equivalent: see distributed.py

from bnnzoo import training as _training
from bnnzoo.registry import Registry
from bnnzoo.tuning.hypermodel import OBJECTIVE, BNNHyperModel

__all__ = ["TUNERS", "list_tuners", "make_tuner", "format_hp_values"]

RUN_SUBDIR = "run"


def format_hp_values(values: dict, skip_tuner_keys: bool = True) -> str:
    parts = []
    for key, value in values.items():
        if skip_tuner_keys and key.startswith("tuner/"):
            continue
        if isinstance(value, float):
            value = f"{value:.3g}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


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


class BayesianOptimization(_BNNTunerMixin, kt.BayesianOptimization):
    """`keras_tuner.BayesianOptimization` over bnnzoo runs."""


TUNERS: Registry = Registry("tuner")
TUNERS.register("random", RandomSearch)
TUNERS.register("hyperband", Hyperband)
TUNERS.register("bayesian", BayesianOptimization)


def list_tuners() -> list[str]:
    return TUNERS.names()


def make_tuner(name: str, hypermodel: BNNHyperModel, *, max_trials: int, directory: str,
               project_name: str = "search", seed: int = 0, overwrite: bool = False):
    """A tuner of kind `name` (`list_tuners()`) searching `hypermodel`.

    With `overwrite=False` (the default) an existing project in
    `directory/project_name` is reloaded: finished trials are kept and an
    interrupted one is retried (resuming from its run directory).
    """
    TUNERS.get(name)  # ValueError listing the valid names
    if not (isinstance(max_trials, int) and max_trials > 0):
        raise ValueError(f"max_trials must be a positive integer, got {max_trials!r}")
    objective = kt.Objective(OBJECTIVE, direction="max")
    common = dict(objective=objective, seed=seed, directory=directory, project_name=project_name,
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
