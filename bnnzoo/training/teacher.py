"""The teacher of a distilled run (`TrainConfig.teacher`): where it comes from, its
model file's sha256, loading it, and the record that pins it to the run directory.

A teacher is named as one of

| `teacher` | what is loaded | sha256 of |
| --- | --- | --- |
| a finished run directory | its `model.keras` (`load_model`) | that `model.keras` |
| a `.keras` / `.h5` model file | the file (`load_model`) | the file |
| `family:tag` of a pretrained artifact | `bnnzoo.models.create(family, weights=tag)` | its weights file (the card's sha256) |

A path that exists is a path, even with a colon in its name. The run directory of a
distilled run holds `teacher.json` (`TEACHER_RECORD`: the source, its kind, the file
and its sha256); resuming an unfinished run whose teacher's file changed since is
refused, since its remaining epochs would learn from another teacher.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from bnnzoo import models as _models
from bnnzoo import pretrained as _pretrained
from bnnzoo._atomic import atomic_path
from bnnzoo.training.run_dir import MODEL_FILE, RunDirectory, load_model, write_json

__all__ = ["TEACHER_LOGITS", "TEACHER_RECORD", "Teacher", "load_teacher", "pin_teacher", "resolve_teacher",
           "saved_teacher_logits"]

TEACHER_RECORD = "teacher.json"
TEACHER_LOGITS = "teacher_logits.npz"  # in the run's checkpoints/, dropped with them when it finishes
_PRETRAINED = re.compile(r"^([A-Za-z0-9_.-]+):([A-Za-z0-9_.-]+)$")


@dataclass(frozen=True)
class Teacher:
    """A resolved teacher: `source` as the config names it, its `kind` (`"run"`,
    `"file"`, `"pretrained"`), the `path` of its model (or weights) file and that
    file's `sha256`."""

    source: str
    kind: str
    path: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def resolve_teacher(source: str) -> Teacher:
    """Find the teacher `source` names and hash its file; loads no model.

    Raises:
        ValueError: `source` names no finished run, model file or pretrained artifact
            (one line saying what is allowed).

    !!! example
        ```python
        from bnnzoo.pretrained import get_card
        from bnnzoo.training.teacher import resolve_teacher

        teacher = resolve_teacher("binarynet_mlp:digits")
        assert teacher.kind == "pretrained" and teacher.sha256 == get_card("binarynet_mlp", "digits").sha256
        try:
            resolve_teacher("no/such/run")
        except ValueError as err:
            assert str(err).startswith("teacher 'no/such/run' is neither")
        else:
            raise AssertionError("a missing teacher was accepted")
        ```
    """
    path = Path(source)
    if path.is_dir():
        model_file = path / MODEL_FILE
        if not model_file.is_file() or (path / "checkpoints").exists():
            raise ValueError(f"teacher {source!r} is not a finished run directory (no {MODEL_FILE}, or "
                             "still has checkpoints/); train it to the end first")
        return Teacher(source, "run", str(model_file), _pretrained.sha256_file(model_file))
    if path.is_file():
        if path.suffix not in (".keras", ".h5"):
            raise ValueError(f"teacher {source!r} must be a .keras or .h5 model file, "
                             f"got a {path.suffix or 'suffixless'} file")
        return Teacher(source, "file", str(path), _pretrained.sha256_file(path))
    match = _PRETRAINED.match(source)
    if match is None:
        raise ValueError(f"teacher {source!r} is neither a finished run directory, a .keras/.h5 model file, "
                         "nor family:tag of a pretrained artifact (bnnzoo list)")
    family, tag = match.groups()
    _models.get_model_spec(family)  # unknown family: the valid names
    card = _pretrained.get_card(family, tag)
    return Teacher(source, "pretrained", f"{family}/{tag}/{card.weights_file}", card.sha256)


def load_teacher(teacher: Teacher) -> tf.keras.Model:
    """The teacher's model (build it under the run's strategy scope)."""
    if teacher.kind == "pretrained":
        family, tag = teacher.source.split(":")
        return _models.create_model(family, weights=tag)
    return load_model(teacher.path)


def pin_teacher(run: RunDirectory, teacher: Teacher | None) -> None:
    """Write `teacher.json` into the run being trained; refuse to resume a run whose
    teacher's file changed since it started (call after `run.prepare`)."""
    if teacher is None:
        return
    if run.state == "resume" and run.chief and run.out is not None:
        previous_path = run.out / TEACHER_RECORD
        if previous_path.is_file():
            try:
                previous = json.loads(previous_path.read_text())
            except ValueError:
                previous = {}
            before = previous.get("sha256") if isinstance(previous, dict) else None
            if before != teacher.sha256:
                raise ValueError(
                    f"cannot resume {run.out}: its teacher {teacher.source!r} changed since the run started "
                    f"(sha256 {str(before)[:12]}... then, {teacher.sha256[:12]}... now); restore that teacher, "
                    "start over (--no-resume, resume=False) or train into another directory (--out NEW)")
    if run.work_dir is not None:
        write_json(run.work_dir / TEACHER_RECORD, teacher.to_dict())


def saved_teacher_logits(run: RunDirectory, teacher: Teacher | None, x: np.ndarray,
                         compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The teacher's logits on the training inputs `x`: `compute(x)` once per run, kept
    beside the run's checkpoints (`checkpoints/teacher_logits.npz`) and read back when
    the run resumes, as long as they were computed by the same teacher file (sha256)
    on the same inputs (sha256 of `x`'s bytes); anything else computes them again.
    The file goes with the checkpoints when the run finishes. `teacher=None` (a
    `Distiller` passed in as the model, no teacher file to key on) computes without saving.

    !!! example
        ```python
        import tempfile
        from pathlib import Path
        import numpy as np
        from bnnzoo.training import RunDirectory, TrainConfig
        from bnnzoo.training.teacher import Teacher, saved_teacher_logits

        run = RunDirectory(Path(tempfile.mkdtemp()) / "run")
        run.prepare(TrainConfig(epochs=1))
        teacher = Teacher("t.keras", "file", "t.keras", "0" * 64)
        x = np.ones((3, 2), np.float32)
        first = saved_teacher_logits(run, teacher, x, lambda x: x @ np.ones((2, 4), np.float32))
        again = saved_teacher_logits(run, teacher, x, lambda x: 1 / 0)  # read back, not computed
        assert np.array_equal(first, again) and first.shape == (3, 4)
        ```
    """
    path = run.checkpoints / TEACHER_LOGITS
    inputs = None if teacher is None else hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
    if inputs is not None and path.is_file():
        try:
            with np.load(path) as saved:
                if str(saved["teacher_sha256"]) == teacher.sha256 and str(saved["inputs_sha256"]) == inputs:
                    print(f"Reading the teacher's outputs on {len(x)} training examples from {path}", flush=True)
                    return saved["logits"]
        except (OSError, ValueError, KeyError):  # unreadable or of another layout: computed again
            pass
    print(f"Computing the teacher's outputs on {len(x)} training examples", flush=True)
    logits = np.asarray(compute(x))
    if inputs is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            np.savez(tmp, logits=logits, teacher_sha256=teacher.sha256, inputs_sha256=inputs)
    return logits
