"""ONNX export (fp32 or int8) and an onnxruntime classifier: the fast CPU path for the recognizer and app.

int8 uses onnxruntime's static QDQ quantization (per-channel weights, uint8 activations) calibrated
on real faces; on a CPU with VNNI it runs ~3x faster than eager PyTorch fp32. Whether its accuracy
holds is measured, not assumed: benchmarks/inference.py --dataset reports both accuracies.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .configuration import input_size
from .modeling import FerForImageClassification

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "pixel_values", "logits"


class _LogitsOnly(nn.Module):
    """The model as a plain tensor -> tensor function, which is what ONNX export traces."""

    def __init__(self, model: FerForImageClassification) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(pixel_values))


def export_onnx(
    model: FerForImageClassification, path: str | os.PathLike, calibration: np.ndarray | None = None
) -> Path:
    """Write the model as ONNX with a dynamic batch axis; int8-quantized when calibration data is given.

    `calibration` is a (N, 3, S, S) float32 batch of processed real faces (a few hundred suffice).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = input_size(model.config)  # crop_size for a model trained on crops
    example = torch.zeros(2, 3, size, size)
    was_training = model.training
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = path if calibration is None else Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                _LogitsOnly(model).eval(), (example,), str(fp32_path), input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        model.train(was_training)  # the exporter leaves the wrapper, hence the model, in train mode
        if calibration is not None:
            _quantize_int8(fp32_path, path, calibration, Path(tmp))
    return path


def _quantize_int8(fp32_path: Path, int8_path: Path, calibration: np.ndarray, tmp: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
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
    quantize_static(str(prepared), str(int8_path), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


class OnnxClassifier:
    """pixel_values -> logits with onnxruntime, callable like the PyTorch model's forward."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
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
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(pixel_values.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0])
