"""The run directory: what `out` holds (fresh, resumable, finished), its lock and
staging folder, checkpoints, atomic JSON files and model files.

A run directory's format is fixed: `config.json`, `history.json`, `metrics.json`,
`model.keras`, `curves.png`, `checkpoints/` (see `bnnzoo.training`); runs written by
earlier versions resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tensorflow as tf

from bnnzoo._atomic import atomic_write_json, json_safe, replace_directory
from bnnzoo._runlock import LOCK_FILE, directory_lock
from bnnzoo.training.config import TrainConfig, is_chief

__all__ = [
    "MODEL_FILE",
    "RunDirectory",
    "TrainResult",
    "load_initial_weights",
    "load_model",
    "read_json",
    "resolve_run_directory",
    "write_json",
    "writing",
]

MODEL_FILE = "model.keras"


@dataclass
class TrainResult:
    model: tf.keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    run_dir: Path | None


@dataclass
class RunDirectory:
    """Where a run writes, and what it found there (`resolve_run_directory`).

    Args:
        out: the run directory asked for (`None`: the run keeps no files).
        state: `"fresh"`, `"resume"` or `"finished"`: what `out` holds for this config.
        chief: whether this worker writes `out` (other workers of a multi-worker run
            write into a private temporary folder).
        work_dir: the folder the run writes while it trains (`out`, its staging
            sibling for a replacement, or a temporary folder); set by `prepare`.

    !!! example
        ```python
        import tempfile
        from pathlib import Path
        from bnnzoo.training import RunDirectory, TrainConfig

        run = RunDirectory(Path(tempfile.mkdtemp()) / "run")
        work = run.prepare(TrainConfig(epochs=1))
        assert work == run.out and (work / "config.json").is_file()
        ```
    """

    out: Path | None
    state: str = "fresh"
    chief: bool = True
    work_dir: Path | None = None

    @property
    def checkpoints(self) -> Path:
        """The resume checkpoint folder of the run being trained."""
        return self.work_dir / "checkpoints"

    def prepare(self, config: TrainConfig) -> Path:
        """Make `work_dir` and write its `config.json`; returns `work_dir`."""
        private = self.out is None or not self.chief
        work = Path(tempfile.mkdtemp(prefix="bnnzoo-")) if private else self.out
        self.work_dir = _prepare_run_dir(work, config, self.state)
        return self.work_dir

    def finished_result(self) -> TrainResult:
        """The finished run `out` holds, read back without training."""
        print(f"{self.out} already holds this finished run; nothing to train "
              "(--overwrite / overwrite=True trains it again)", flush=True)
        return _finished_result(self.out)

    def write_records(self, record: dict[str, Any]) -> None:
        """Write `{file name: value}` as JSON files into `out` (chief only)."""
        if self.out is not None and self.chief:
            for name, value in record.items():
                write_json(self.out / name, value)

    def finish(self) -> None:
        """Drop the checkpoints of the completed run; swap a staged replacement into
        `out`, or remove a private temporary folder."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        if self.out is not None and self.chief and self.work_dir == _staging_dir(self.out):
            _keep_other_files(self.out, self.work_dir)
            replace_directory(self.work_dir, self.out)  # the complete new run replaces the previous one
        elif self.work_dir != self.out:  # a private temporary folder (no `out`, or a non-chief worker)
            shutil.rmtree(self.work_dir, ignore_errors=True)


@contextlib.contextmanager
def resolve_run_directory(config: TrainConfig, out: str | os.PathLike | None,
                          strategy: tf.distribute.Strategy, *, resume: bool = True,
                          overwrite: bool = False) -> Iterator[RunDirectory]:
    """The first phase of `train`: what `out` holds for a run of `config`, with `out`'s
    writer lock held for the whole `with` block.

    Raises `ValueError` rather than replace a finished run of another config or
    resume one of another config (see `train`), `NotADirectoryError` for a file.
    When the block fails, an unfinished replacement (staging folder) is removed and
    a directory this run created and wrote nothing but `config.json` into is
    removed again, so `out` is left as it was.

    Args:
        config: the run's configuration.
        out: the run directory, or `None` (no files kept).
        strategy: the run's strategy (only its chief worker locks and writes `out`).
        resume: resume an unfinished run of the same config (else start over).
        overwrite: replace whatever run `out` holds.

    !!! example
        ```python
        import tempfile
        import tensorflow as tf
        from bnnzoo.training import TrainConfig, resolve_run_directory

        out = tempfile.mkdtemp()
        with resolve_run_directory(TrainConfig(epochs=1), out, tf.distribute.get_strategy()) as run:
            assert run.state == "fresh"  # `out` holds no run yet
        ```
    """
    run = RunDirectory(Path(out) if out is not None else None, chief=is_chief(strategy))
    if run.out is None or not run.chief:
        yield run
        return
    _check_not_a_file(run.out)
    with directory_lock(run.out) as lock:
        try:
            run.state = _existing_run(run.out, config, resume=resume, overwrite=overwrite)
            yield run
        except BaseException:
            # A replacement that did not finish leaves the previous run as it was.
            shutil.rmtree(_staging_dir(run.out), ignore_errors=True)
            if lock.created and lock.holds_only("config.json"):  # no epoch was trained in it
                for name in ("config.json", LOCK_FILE):
                    (run.out / name).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    run.out.rmdir()
            raise


def _weight_shapes(model: tf.keras.Model) -> list[tuple[str, list[tuple]]]:
    return [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in model.layers
            if layer.weights]


def load_initial_weights(model: tf.keras.Model, source: str | os.PathLike) -> None:
    """Copy the weights of `source` (a run directory or a saved model) into `model`.

    Layers are matched in order among those with weights, and every weight's shape
    must agree; quantizers do not matter (a float run initializes its binary
    version: the latent weights start at the float weights). Raises `ValueError`
    naming both models where the architectures differ.
    """
    path = Path(source)
    described = str(path)
    config_file = path / "config.json" if path.is_dir() else None
    if config_file is not None and config_file.exists():
        values = read_json(config_file, hint="init_from needs a run directory written by bnnzoo train")
        described = f"{path} ({values.get('model')} {values.get('model_kwargs') or ''})".strip()
    try:
        donor = load_model(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"init_from: cannot load a model from {path}: {error}") from None
    mine, theirs = _weight_shapes(model), _weight_shapes(donor)
    if [shapes for _, shapes in mine] != [shapes for _, shapes in theirs]:
        first = next((f"layer {a[0]!r} {a[1]} vs {b[0]!r} {b[1]}" for a, b in zip(mine, theirs)
                      if a[1] != b[1]), f"{len(mine)} vs {len(theirs)} layers with weights")
        raise ValueError(
            f"init_from: {described} has another architecture than model {model.name!r}: {first}"
        )
    for target, donor_layer in zip([l for l in model.layers if l.weights],
                                   [l for l in donor.layers if l.weights]):
        target.set_weights(donor_layer.get_weights())


def load_model(path: str | os.PathLike) -> tf.keras.Model:
    """Load a model saved by `train` (a run directory or a `.keras`/`.h5` file)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No saved model at {path}")
    import zipfile

    # Every custom object is registered: bnnzoo/__init__ has run before this module.

    try:
        from bnnzoo.model_files import load_keras_file  # files of a newer Keras 2: bnnzoo/model_files.py

        return load_keras_file(path, compile=False)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as err:
        detail = " ".join(str(err).split())[:300]
        raise ValueError(f"cannot load the model file {path}: truncated, corrupted or not a Keras model "
                         f"({type(err).__name__}: {detail})") from err


class _ResumeCheckpoint(tf.keras.callbacks.Callback):
    """Saves model, optimizer, finished-epoch count and history after each epoch."""

    def __init__(self, manager: tf.train.CheckpointManager, epoch_var: tf.Variable,
                 history: dict[str, list[float]], history_path: Path):
        super().__init__()
        self.manager = manager
        self.epoch_var = epoch_var
        self.history = history
        self.history_path = history_path

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            values = self.history.setdefault(key, [])
            # A key first logged after a resume (a callback added since) gets None for
            # the epochs before, so that entry i of every list is epoch i + 1.
            values.extend([None] * (epoch - len(values)))
            values.append(float(value))
        # History first: if the process dies between the two writes, the checkpoint
        # is the older one and `train` drops the extra history entry on resume
        # (checkpoint first would lose that entry for good).
        write_json(self.history_path, self.history)
        self.epoch_var.assign(epoch + 1)
        with writing(self.manager.directory):
            self.manager.save(checkpoint_number=epoch + 1)


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")


def read_json(path: str | os.PathLike, kind: type = dict, *, hint: str = "") -> Any:
    """The JSON value of the file `path`, which must be a `kind` (an object by default).

    A file that is not valid JSON or holds another type is a `ValueError` naming
    the file (decoders name only the line), followed by `hint` (what to do).
    """
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        problem = f"is not valid JSON ({' '.join(str(err).split())[:120]})"
    else:
        if isinstance(value, kind):
            return value
        problem = f"holds a JSON {type(value).__name__}, not {'an object' if kind is dict else kind.__name__}"
    raise ValueError(f"{path} {problem}" + (f"; {hint}" if hint else ""))


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Name `path` in a failed write's error: an `OSError` (a full disk's `[Errno 28]`
    names no file) or TensorFlow's `ResourceExhaustedError`/`OpError` from its own
    writers (checkpoints) become one `OSError` saying the path and what to do."""
    try:
        yield
    except OSError as err:
        if str(path) in str(err):
            raise
        raise _write_error(path, err.errno, err.strerror or " ".join(str(err).split())) from err
    except tf.errors.OpError as err:
        full = isinstance(err, tf.errors.ResourceExhaustedError) or "No space left" in str(err)
        raise _write_error(path, errno.ENOSPC if full else errno.EIO,
                           os.strerror(errno.ENOSPC) if full else " ".join(str(err.message).split())[:200]) from err


def _write_error(path, code, reason: str) -> OSError:
    todo = ("free some space or write elsewhere (--out); an unfinished run resumes from its last "
            "checkpoint with the same command") if code == errno.ENOSPC else "check the path and its disk"
    error = OSError(f"cannot write {path}: {reason}; {todo}")
    error.errno = code
    return error


def write_json(path: Path, obj) -> None:
    """Write `obj` as JSON to `path` atomically (temporary file + `os.replace`).

    The file is always valid JSON: NaN and ±Infinity (e.g. the loss of a diverged
    run) are written as `null`; numpy scalars and paths are converted.

    Args:
        path: the target file; its folder must exist.
        obj: the value to write.
    """
    with writing(path):
        atomic_write_json(path, obj, default=_json_default)

# The files of a run directory that a new run replaces.
_RUN_FILES = (MODEL_FILE, "metrics.json", "history.json", "curves.png")


def _field_defaults() -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _config_differences(previous: dict[str, Any], config: TrainConfig) -> list[str]:
    """Keys (except `strategy`) whose values differ between a saved config and `config`.

    A key missing from the saved config counts as its field's default, so run
    directories written before a field existed still match.
    """
    def as_json(values):
        return json.loads(json.dumps(json_safe(values, _json_default)))

    current, defaults = as_json(config.to_dict()), as_json(_field_defaults())
    missing = object()
    keys = (set(previous) | set(current)) - {"strategy"}
    return sorted(k for k in keys if previous.get(k, defaults.get(k, missing)) != current.get(k, missing))


def _check_not_a_file(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"out {run_dir} is a file, not a run directory; give a folder path")


def _staging_dir(run_dir: Path) -> Path:
    """Where a run that replaces `run_dir`'s previous one is trained (a hidden sibling,
    on the same file system) until it is complete and swapped in."""
    return run_dir.with_name(f".{run_dir.name}.staging")


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target, follow_symlinks=False)


def _keep_other_files(old: Path, new: Path) -> None:
    """Hard-link into `new` whatever `old` holds besides a run's own files (e.g. an
    export written into the run directory), so that swapping `new` in keeps it."""
    owned = {*_RUN_FILES, "config.json", "checkpoints", "recipe.json", "teacher.json", LOCK_FILE}
    for item in old.iterdir():
        if item.name in owned or (new / item.name).exists():
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, new / item.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(item, new / item.name)


def _holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds anything a run trained (a result or a checkpoint, which a
    new run must not destroy). A `config.json` alone (a run killed before its first
    checkpoint) is not: a new run trains in place there, so that it can be resumed;
    trained in the staging folder, every restart would remove it and start over."""
    return run_dir.is_dir() and any((run_dir / name).exists() for name in (*_RUN_FILES, "checkpoints"))



def checkpointed_epoch(run_dir: str | os.PathLike) -> int | None:
    """The last epoch `run_dir`'s epoch checkpoints hold (0 when the index names none), or
    `None` when it has no checkpoint index: what an interrupted run resumes from."""
    index = Path(run_dir) / "checkpoints" / "checkpoint"
    if not index.is_file():
        return None
    return max(map(int, re.findall(r"ckpt-(\d+)", index.read_text())), default=0)


def _existing_run(run_dir: Path, config: TrainConfig, *, resume: bool, overwrite: bool) -> str:
    """What `run_dir` holds for a new run of `config`: `"finished"` (the same config,
    done), `"resume"` (the same config, unfinished) or `"fresh"` (start over).

    Raises `ValueError` (one line: the differing keys and the ways out) rather than
    replace a finished run of another config, or resume one of another config.
    """
    _check_not_a_file(run_dir)
    config_path, ckpt_dir = run_dir / "config.json", run_dir / "checkpoints"
    finished = (run_dir / MODEL_FILE).is_file() and not ckpt_dir.exists()
    if overwrite or not run_dir.is_dir():
        return "fresh"
    if not config_path.is_file():
        if finished:
            raise ValueError(f"{run_dir} holds a {MODEL_FILE} without config.json; "
                             "train into another directory (--out NEW) or replace it (--overwrite)")
        return "fresh"
    previous = read_json(config_path, hint="train into another directory (--out NEW) or replace it (--overwrite)")
    differ = _config_differences(previous, config)
    if finished and differ:
        raise ValueError(
            f"{run_dir} holds a finished run with a different config (differs in: {', '.join(differ)}); "
            "train into another directory (--out NEW) or replace it (--overwrite, overwrite=True)"
        )
    if finished and (run_dir / "metrics.json").is_file():
        return "finished" if resume else "fresh"  # resume=False: train the same config again
    if ckpt_dir.exists() and resume:
        if differ:
            raise ValueError(
                f"{run_dir} holds an unfinished run with a different config (differs in: {', '.join(differ)}); "
                "use another directory (--out NEW), start it over (--no-resume, resume=False) "
                "or replace it (--overwrite, overwrite=True)"
            )
        return "resume"
    return "fresh"


def _finished_result(run_dir: Path) -> TrainResult:
    """The result of a finished run directory, read back without training."""
    history_path = run_dir / "history.json"
    hint = "train it again with --overwrite, or into another directory (--out NEW)"
    history = read_json(history_path, hint=hint) if history_path.is_file() else {}
    metrics = read_json(run_dir / "metrics.json", hint=hint)
    return TrainResult(model=load_model(run_dir), history=history, metrics=metrics, run_dir=run_dir)


def _prepare_run_dir(work_dir: Path, config: TrainConfig, state: str) -> Path:
    """Make the folder a run of `config` writes into and write its `config.json` there.

    Returns `work_dir` itself, except for a fresh run over a previous one (`--no-resume`
    of a finished run, `--overwrite`): that run is trained in `_staging_dir(work_dir)`,
    and `train` swaps it in only once it is complete, so a crash, Ctrl-C or full disk
    leaves the previous run as it was.
    """
    target = work_dir
    try:
        if state == "fresh" and _holds_a_run(work_dir):
            work_dir = _staging_dir(work_dir)
            shutil.rmtree(work_dir, ignore_errors=True)  # one a killed run left behind
        work_dir.mkdir(parents=True, exist_ok=True)
        write_json(work_dir / "config.json", config.to_dict())
    except OSError as err:
        if err.strerror is None and str(target) in str(err):  # `writing`'s: already names the file
            raise
        raise type(err)(f"cannot write the run directory {target}: {err.strerror or err}") from err
    return work_dir


def _check_fully_restored(status, path: str) -> None:
    """The resumed checkpoint and the run's state match one to one, now that every
    variable exists: no checkpointed value is left over and no variable is left unset.

    A checkpoint written by another bnnzoo version (e.g. renamed optimizer state) would
    otherwise resume with part of its state silently left at initial values.
    """
    try:
        status.assert_consumed()
    except AssertionError as err:
        status.expect_partial()  # the error below says it; no second report at deletion
        found = re.findall(r"\(root\)\.[\w./-]+|Variable '[^']+'", str(err))
        names = sorted(set(found)) or [str(err).splitlines()[0]]
        raise ValueError(f"cannot resume from {path}: the checkpoint does not match this run's state "
                         f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); it was written "
                         "by another bnnzoo version or model; start the run over with --no-resume") from None
