"""`export_model`: source -> inference form -> file, checked against Keras, as an `ExportReport`."""

from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from bnnzoo import data, quantizers, training
from bnnzoo._atomic import atomic_write_bytes, replace_directory
from bnnzoo.export.availability import require_lce
from bnnzoo.export.conversion import convert
from bnnzoo.export.errors import ExportError
from bnnzoo.export.flatbuffer import flatbuffer_stats
from bnnzoo.export.inference import inference_model
from bnnzoo.export.interpreter import FlatbufferRunner
from bnnzoo.export.source import load_source
from bnnzoo.export.verify import verify_flatbuffer, verify_savedmodel

__all__ = ["FORMATS", "ExportReport", "export_model"]

FORMATS = ("lce", "tflite", "savedmodel")
"""The formats `export_model` writes: LCE and plain TFLite flatbuffers, a SavedModel directory."""


@dataclass
class ExportReport:
    """What `export_model` wrote and how the export compares with Keras."""

    format: str
    path: str
    file_bytes: int
    params: int
    binary_params: int
    bits_per_weight: float
    test_images: int
    dataset: str | None
    top1_agreement: float
    max_abs_diff: float
    latency_ms: float | None
    latency_note: str
    ops: dict[str, int] = field(default_factory=dict)
    inference_vs_original_agreement: float | None = None

    def summary(self) -> str:
        """The report as the lines `bnnzoo export` prints."""
        lines = [
            f"exported {self.format} -> {self.path}",
            f"  file size        {self.file_bytes / 1024:.1f} KiB",
            f"  bits per weight  {self.bits_per_weight:.2f}  ({self.binary_params} of {self.params} "
            "parameters binary; constant bytes x 8 / Keras parameters)",
            f"  check            {self.test_images} images of {self.dataset or 'given inputs'}: "
            f"top-1 agreement {100 * self.top1_agreement:.2f} %, max |output diff| {self.max_abs_diff:.2e}",
        ]
        if self.inference_vs_original_agreement is not None:
            lines.append(f"  inference form vs trained model: top-1 agreement "
                         f"{100 * self.inference_vs_original_agreement:.2f} %")
        if self.latency_ms is not None:
            lines.append(f"  latency          {self.latency_ms:.3f} ms/image  ({self.latency_note})")
        if self.ops:
            lines.append("  ops              " + ", ".join(f"{k} x{v}" for k, v in self.ops.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (`bnnzoo export --json`)."""
        return asdict(self)


def _latency_ms(runner: FlatbufferRunner, image: np.ndarray, repeats: int) -> float:
    """Median time of one single-image run, after a warm-up run."""
    runner.one(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.one(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def _latency_note(fmt: str) -> str:
    arch = platform.machine()
    if fmt == "lce" and arch.lower() not in ("aarch64", "arm64", "armv7l"):
        return (f"LCE interpreter on {arch}: reference kernels, not optimized; "
                "not representative of ARM latency")
    return f"{'LCE' if fmt == 'lce' else 'TFLite'} interpreter on {arch}, 1 thread"


def _test_images(model, dataset, images, num_images, data_dir=None) -> np.ndarray:
    """The check images: given ones, the dataset's test split, or random inputs."""
    if images is None:
        if dataset is None:
            rng = np.random.default_rng(0)
            shape = tuple(model.input_shape[1:])
            images = rng.standard_normal((num_images or 64,) + shape).astype(np.float32)
        else:
            images = data.load_arrays(dataset, data_dir=data_dir).x_test
    images = np.asarray(images, np.float32)
    if num_images:
        images = images[:num_images]
    if tuple(images.shape[1:]) != tuple(model.input_shape[1:]):
        raise ExportError(
            f"test images have shape {images.shape[1:]}, the model expects {model.input_shape[1:]}"
        )
    return images


def _check_binary(model: tf.keras.Model, source) -> None:
    """`ExportError` (one line, with the ways out) for a model whose 1-bit quantizers are
    not binary yet (`bnnzoo.quantizers.binary_forward`): its sign export would be
    another model. A float model (no 1-bit quantizer) is exported as it is."""
    unfinished = [q.name for q in quantizers.annealable_quantizers(model) if not q.is_exact_sign()]
    if not unfinished:
        return
    what = model.name if isinstance(source, tf.keras.Model) else str(source)
    raise ExportError(
        f"{what} is not binary: {len(unfinished)} annealed quantizer(s) without their exact-sign "
        f"forward ({', '.join(unfinished[:3])}{', ...' if len(unfinished) > 3 else ''}), so the sign "
        "export would be another model; finish it with bnnzoo.quantizers.finalize(model) (or train "
        "with the annealing callback's exact-sign phase, --annealing default), or export it anyway "
        "with --allow-non-binary (allow_non_binary=True)")


def export_model(
    source,
    format: str = "lce",
    out: str | os.PathLike | None = None,
    *,
    dataset: str | None = None,
    images: np.ndarray | None = None,
    num_images: int | None = None,
    data_dir: str | None = None,
    atol: float = 1e-4,
    latency_repeats: int = 50,
    allow_non_binary: bool = False,
) -> ExportReport:
    """Export `source` to `format`, write it to `out` and check it against Keras.

    Args:
        source: a Keras model, run directory, saved model file or `NAME:TAG`.
        format: one of `FORMATS`.
        out: output file (`lce`, `tflite`) or directory (`savedmodel`); default
            `<model name>.tflite` / `<model name>_savedmodel`.
        dataset: dataset whose test images check the export (default: the run's
            or the pretrained card's; random inputs if neither is known).
        images: explicit check images (overrides `dataset`).
        num_images: check on the first N test images only (default: all).
        data_dir: folder with the dataset files, if not the default.
        atol: largest allowed |output difference| (outputs are softmax probabilities).
        latency_repeats: single-image runs timed for the latency figure (0: skip).
        allow_non_binary: export a model whose 1-bit quantizers are not binary yet
            (annealed quantizers not at exact sign, so `bnnzoo.quantizers.binary_forward`
            is False); refused by default, since the export (sign) is then another
            model than the one trained and measured.

    `out` is written only after the export passed its check: the new file (or
    SavedModel folder) is made beside it and renamed into place, so a failed
    check, a crash or a full disk leaves a previous `out` as it was.

    Returns:
        The report: file size, bits per weight, the check's agreement and the
        latency figure.

    Raises:
        ExportError: a layer that cannot be converted (named), an export that
            disagrees with the Keras model, or annealed quantizers not at exact sign
            (without `allow_non_binary`).
        ValueError: an unknown `format`.
        LceUnavailableError: `lce` on a stack without larq-compute-engine (an
            `ExportError`), naming the stacks that have it.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "lce":
        require_lce("the lce format (bnnzoo export --format lce)")  # one line, before any work
    original, source_dataset = load_source(source)
    if not allow_non_binary:
        _check_binary(original, source)
    dataset = dataset or source_dataset
    model = inference_model(original)
    images = _test_images(model, dataset, images, num_images, data_dir)
    same = None
    if model is not original:
        same = float(np.mean(
            original.predict(images, batch_size=256, verbose=0).argmax(-1)
            == model.predict(images, batch_size=256, verbose=0).argmax(-1)
        ))
    memory = training.model_memory(model)
    params = memory["params"]
    out = Path(out or (f"{model.name}.tflite" if format != "savedmodel" else f"{model.name}_savedmodel"))
    out.parent.mkdir(parents=True, exist_ok=True)
    common = dict(format=format, path=str(out), params=params, binary_params=memory["binary_params"],
                  test_images=len(images), dataset=dataset, inference_vs_original_agreement=same)
    if format == "savedmodel":
        staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            tf.saved_model.save(model, str(staging))
            agreement, diff = verify_savedmodel(staging, model, images, atol)
            size = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
            replace_directory(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ExportReport(**common, file_bytes=size, bits_per_weight=8 * size / max(params, 1),
                            top1_agreement=agreement, max_abs_diff=diff, latency_ms=None, latency_note="")
    flatbuffer = convert(model, format)
    agreement, diff = verify_flatbuffer(flatbuffer, model, images, format, atol)
    atomic_write_bytes(out, flatbuffer)  # only a checked export replaces `out`
    stats = flatbuffer_stats(flatbuffer)
    latency = (_latency_ms(FlatbufferRunner(flatbuffer, format), images[0], latency_repeats)
               if latency_repeats else None)
    return ExportReport(**common, file_bytes=len(flatbuffer),
                        bits_per_weight=8 * stats["constant_bytes"] / max(params, 1),
                        top1_agreement=agreement, max_abs_diff=diff, latency_ms=latency,
                        latency_note=_latency_note(format), ops=stats["ops"])
