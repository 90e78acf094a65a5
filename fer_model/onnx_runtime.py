"""ONNX export (fp32 or int8) and an onnxruntime classifier: the fast CPU path for the recognizer and app.

int8 uses onnxruntime's static QDQ quantization (per-channel weights, uint8 activations) calibrated
on real faces; on a CPU with VNNI it runs ~3x faster than eager PyTorch fp32. Whether its accuracy
holds is measured, not assumed: benchmarks/inference.py --dataset reports both accuracies. The activation
ranges come from onnxruntime's Percentile calibrator (the 99.999th percentile of |activation|): with its
default, MinMax, the released model lost 0.50 points of test accuracy, with Percentile 0.20 (README,
"Fast CPU inference", has the table).

Every exported file carries a fingerprint in its ONNX metadata_props: the sha256 of the weights it was
exported from and the config fields that shape its input and output. Loading checks it against the model
folder (`onnx_runtime_for`), so a file left over from other weights is never served by mistake. The graph
returns UNCALIBRATED logits; `OnnxClassifier` divides them by the folder's temperature, so recalibrating a
folder (which rewrites config.json only) keeps its ONNX files valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .configuration import input_size
from .modeling import FerForImageClassification

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "pixel_values", "logits"
INT8_FILENAME = "model_int8.onnx"  # what `export-onnx --int8` writes into a model folder; served by default
ONNX_ENV = "FER_ONNX"  # the CLI's and the app's default choice: a file, "auto" or "none"
WEIGHTS_KEY, CONFIG_KEY = "fer_model.weights_sha256", "fer_model.config"
FINGERPRINT_FIELDS = ("backbone", "hidden_size", "image_size", "image_mean", "image_std", "id2label")
CALIBRATION_METHODS = ("Percentile", "MinMax", "Entropy")  # onnxruntime's CalibrationMethod names; first: default
# Training faces that calibrate int8. onnxruntime keeps every activation of every face in memory while it
# calibrates (about 6 MB a face here), and 1,024 or 2,048 faces measured no better than 512 with Percentile.
CALIBRATION_SAMPLES = 512


def int8_calibration_faces(train: Any, samples: int = CALIBRATION_SAMPLES) -> torch.Tensor:
    """The uint8 faces that calibrate int8: a seeded sample of a `load_fer2013` train split (which may be sorted
    by label), the same for `export-onnx --int8` and train.py's --export_int8."""
    from .data import split_to_tensors

    return split_to_tensors(train.shuffle(seed=0).select(range(min(samples, len(train)))))[0]


class OnnxMismatchError(ValueError):
    """An ONNX file whose fingerprint says it was exported from other weights or another config."""


class OnnxFileWarning(UserWarning):
    """The model folder's ONNX file is used without a check (no fingerprint) or skipped (a mismatch). `summary`:
    the same in one line naming no path (what the Space prints at start: a Space's log is public)."""

    def __init__(self, message: str, summary: str = "") -> None:
        super().__init__(message)
        self.summary = summary or message


class _LogitsOnly(nn.Module):
    """The model as a plain tensor -> tensor function, which is what ONNX export traces."""

    def __init__(self, model: FerForImageClassification) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.uncalibrated_logits(pixel_values)


def fingerprint(model: FerForImageClassification) -> dict[str, str]:
    """The metadata that ties an ONNX file to `model`: sha256 of every weight and buffer (in name order, with
    names, dtypes and shapes; the content of model.safetensors, however it is sharded), and the config fields
    that decide the input and output (FINGERPRINT_FIELDS, as JSON)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    config = model.config.to_dict()
    fields = {key: config[key] for key in FINGERPRINT_FIELDS}
    fields["id2label"] = {str(k): v for k, v in fields["id2label"].items()}
    return {WEIGHTS_KEY: digest.hexdigest(), CONFIG_KEY: json.dumps(fields, sort_keys=True)}


def export_onnx(
    model: FerForImageClassification, path: str | os.PathLike, calibration: np.ndarray | None = None,
    method: str = CALIBRATION_METHODS[0], fp32_nodes: tuple[str, ...] = (),
) -> Path:
    """Write the model as ONNX with a dynamic batch axis; int8-quantized when calibration data is given.

    `calibration` is a (N, 3, S, S) float32 batch of processed real faces (CALIBRATION_SAMPLES of them);
    `method` one of CALIBRATION_METHODS; `fp32_nodes`: ONNX node names left unquantized (e.g. "/head/fc2/Gemm").
    The file gets the model's fingerprint and appears at `path` only once
    complete.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method={method!r} is not one of {CALIBRATION_METHODS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = input_size(model.config)  # crop_size for a model trained on crops
    example = torch.zeros(2, 3, size, size)
    was_training = model.training
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                _LogitsOnly(model).eval(), (example,), str(fp32_path), input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        model.train(was_training)  # the exporter leaves the wrapper, hence the model, in train mode
        written = fp32_path
        if calibration is not None:
            written = Path(tmp) / "int8.onnx"
            _quantize_int8(fp32_path, written, calibration, method, fp32_nodes, Path(tmp))
        _write_with_metadata(written, path, fingerprint(model))
    return path


def _write_with_metadata(source: Path, target: Path, properties: dict[str, str]) -> None:
    """`source` with `properties` added to its metadata_props, moved into place at `target` atomically."""
    import onnx

    proto = onnx.load(str(source))
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **properties})
    staged = target.with_name(f".{target.name}.tmp")
    try:
        onnx.save(proto, str(staged))
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)


def _quantize_int8(fp32_path: Path, int8_path: Path, calibration: np.ndarray, method: str,
                   fp32_nodes: tuple[str, ...], tmp: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration.ndim != 4 or len(calibration) == 0:
        raise ValueError(f"calibration must be a non-empty (N, 3, S, S) batch; got shape {calibration.shape}")

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(np.array_split(calibration.astype(np.float32),
                                                                     max(1, len(calibration) // 64)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    prepared = tmp / "prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared))
    with contextlib.redirect_stdout(sys.stderr):  # the calibrator prints its settings; stdout is the CLI's JSON
        quantize_static(str(prepared), str(int8_path), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=list(fp32_nodes))


class OnnxClassifier:
    """pixel_values -> logits / temperature with onnxruntime, callable like the PyTorch model's forward.

    `temperature`: the model folder's config.temperature (the graph's logits are uncalibrated).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, temperature: float = 1.0) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX model at {path}: create one with "
                                    f"`python -m fer_model export-onnx --model MODEL --out {path.name}`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting after a run: spinning threads would steal the cores from the face detector that
        # runs next (measured: 41 -> 31 ms end to end on the astronaut photo, 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.temperature = float(temperature)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(pixel_values.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0]) / self.temperature


def check_belongs(classifier: OnnxClassifier, model: FerForImageClassification) -> bool:
    """True when the file's fingerprint matches `model`; False for a file without one (exported before
    fingerprints existed: it cannot be checked). OnnxMismatchError naming the difference otherwise."""
    metadata = classifier.metadata
    if WEIGHTS_KEY not in metadata:
        return False
    expected = fingerprint(model)
    fields, theirs = json.loads(expected[CONFIG_KEY]), json.loads(metadata.get(CONFIG_KEY, "{}"))
    differ = [key for key in FINGERPRINT_FIELDS if fields.get(key) != theirs.get(key)]
    if differ:
        raise OnnxMismatchError(f"{classifier.path} was exported for another config ({', '.join(differ)} differ "
                                "from the model folder's): export it again from this folder")
    if metadata[WEIGHTS_KEY] != expected[WEIGHTS_KEY]:
        raise OnnxMismatchError(f"{classifier.path} was exported from other weights than the model folder's "
                                "(weights sha256 differs): export it again from this folder "
                                "(python -m fer_model export-onnx --int8 ...)")
    return True


def onnx_choice(value: str | os.PathLike | None = None, no_onnx: bool = False) -> str:
    """The CLI's and app's runtime choice: "none" with --no-onnx, else the given value, else $FER_ONNX, else
    "auto" (the folder's model_int8.onnx when it has one)."""
    return "none" if no_onnx else str(value or os.environ.get(ONNX_ENV) or "auto")


def onnx_runtime_for(
    model: FerForImageClassification, source: str | os.PathLike, choice: str | os.PathLike | None = "auto"
) -> OnnxClassifier | None:
    """The onnxruntime classifier that `choice` asks for, checked against `model` (loaded from `source`), or
    None for PyTorch.

    choice None / "" / "none": PyTorch. A file path: that file; a mismatched fingerprint raises OnnxMismatchError.
    "auto": the model's INT8_FILENAME (folder or Hub repo) when it exists and the model runs on the CPU; a
    mismatched one is skipped with a warning (PyTorch serves: the folder's weights are the truth). Either way a
    file without a fingerprint (exported before they existed) is used with a warning saying how to re-export.
    """
    if not choice or str(choice).lower() == "none":
        return None
    auto = str(choice).lower() == "auto"
    path = _folder_int8(source) if auto else Path(choice)
    if path is None or (auto and model.device.type != "cpu"):
        return None
    classifier = OnnxClassifier(path, temperature=model.config.temperature)
    try:
        verified = check_belongs(classifier, model)
    except OnnxMismatchError as error:
        if not auto:
            raise
        warnings.warn(OnnxFileWarning(f"{error}. Serving the PyTorch model instead.",
                                      f"{path.name} belongs to other weights: serving the PyTorch model"), stacklevel=2)
        return None
    if not verified:
        warnings.warn(OnnxFileWarning(
            f"{path} has no fingerprint (exported before fer_model checked them), so whether it belongs to "
            f"{source}'s weights cannot be checked; using it. Export it again with `python -m fer_model "
            "export-onnx --int8` to add one, or choose PyTorch (--no-onnx, FER_ONNX=none).",
            f"{path.name} has no fingerprint: used unchecked (re-export: python -m fer_model export-onnx --int8)"),
            stacklevel=2)
    return classifier


def _folder_int8(source: str | os.PathLike) -> Path | None:
    """source/model_int8.onnx for a folder, the cached or downloaded file for a Hub id; None when absent."""
    from transformers.utils import cached_file

    found = cached_file(str(source), INT8_FILENAME, _raise_exceptions_for_missing_entries=False,
                        _raise_exceptions_for_connection_errors=False)
    return Path(found) if found else None
