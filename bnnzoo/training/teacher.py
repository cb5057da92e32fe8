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

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import tensorflow as tf

from bnnzoo import models as _models
from bnnzoo import pretrained as _pretrained
from bnnzoo.training.run_dir import MODEL_FILE, RunDirectory, load_model, write_json

__all__ = ["TEACHER_RECORD", "Teacher", "load_teacher", "pin_teacher", "resolve_teacher"]

TEACHER_RECORD = "teacher.json"
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
