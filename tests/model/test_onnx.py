"""ONNX export + onnxruntime: the same logits as PyTorch (fp32), close ones (int8), and the CLI around it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_model import EmotionRecognizer, FerForImageClassification
from fer_model.images import load_image
from fer_model.onnx_runtime import OnnxClassifier, export_onnx
from tests.helpers.image_files import ASTRONAUT, tile_2x2
from tests.helpers.paths import FER2013_DIR, REPO, needs_fer2013


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> FerForImageClassification:
    return FerForImageClassification.from_pretrained(tiny_model_dir).eval()


@pytest.fixture(scope="module")
def fp32_onnx(model: FerForImageClassification, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_fp32_onnx_matches_pytorch_for_any_batch_size(model: FerForImageClassification, fp32_onnx: Path) -> None:
    classifier = OnnxClassifier(fp32_onnx)
    for batch in (1, 5, 64):
        pixel_values = torch.randn(batch, 3, 48, 48)
        with torch.inference_mode():
            expected = model(pixel_values).logits
        torch.testing.assert_close(classifier(pixel_values), expected, atol=1e-4, rtol=1e-4)


def test_int8_onnx_stays_close_to_fp32(model: FerForImageClassification, tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    calibration = torch.randn(128, 3, 48, 48, generator=generator).numpy()
    int8 = export_onnx(model, tmp_path / "int8.onnx", calibration=calibration)
    assert int8.stat().st_size < 0.4 * sum(p.numel() * 4 for p in model.parameters())  # int8 weights
    pixel_values = torch.randn(32, 3, 48, 48, generator=generator)
    with torch.inference_mode():
        expected = model(pixel_values).logits
    got = OnnxClassifier(int8)(pixel_values)
    assert got.shape == expected.shape
    correlation = np.corrcoef(got.flatten().numpy(), expected.flatten().numpy())[0, 1]
    assert correlation > 0.95, correlation


def test_bad_calibration_and_missing_file_are_explained(model: FerForImageClassification, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="calibration must be"):
        export_onnx(model, tmp_path / "x.onnx", calibration=np.zeros((0, 3, 48, 48), np.float32))
    with pytest.raises(ValueError, match="method='Histogram' is not one of"):
        export_onnx(model, tmp_path / "x.onnx", calibration=np.zeros((4, 3, 48, 48), np.float32), method="Histogram")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
    with pytest.raises(FileNotFoundError, match="export-onnx"):
        OnnxClassifier(tmp_path / "missing.onnx")


def test_recognizer_on_onnx_agrees_with_pytorch(tiny_model_dir: Path, fp32_onnx: Path) -> None:
    image = tile_2x2(load_image(ASTRONAUT))
    torch_result = EmotionRecognizer.from_pretrained(tiny_model_dir).recognize(image)
    onnx_result = EmotionRecognizer.from_pretrained(tiny_model_dir, onnx=fp32_onnx).recognize(image)
    assert len(onnx_result["faces"]) == len(torch_result["faces"]) == 4
    for ours, theirs in zip(onnx_result["faces"], torch_result["faces"], strict=True):
        assert ours["box"] == theirs["box"] and ours["label"] == theirs["label"]
        assert ours["scores"] == pytest.approx(theirs["scores"], abs=1e-4)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fer_model", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_export_cli_int8_needs_calibration(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = run_cli("export-onnx", "--model", str(tiny_model_dir), "--out", str(tmp_path / "m.onnx"), "--int8")
    assert result.returncode == 2 and "--calibration" in result.stderr
    assert not (tmp_path / "m.onnx").exists()


@needs_fer2013
def test_export_int8_from_real_faces_then_evaluate_and_predict(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    result = run_cli("export-onnx", "--model", str(tiny_model_dir), "--out", str(out), "--int8",
                     "--calibration", str(FER2013_DIR), "--calibration_samples", "64")
    assert result.returncode == 0, result.stderr
    # stdout is the JSON line alone (onnxruntime's calibrator chatter goes to stderr)
    assert json.loads(result.stdout) == {"model": str(tiny_model_dir), "onnx": str(out), "int8": True}
    result = run_cli("evaluate", "--model", str(tiny_model_dir), "--dataset", str(FER2013_DIR), "--split", "test",
                     "--max_samples", "64", "--onnx", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["onnx"] == str(out) and sum(c["support"] for c in metrics["per_class"].values()) == 64
    assert "warning" not in result.stderr  # the export's fingerprint matched the folder
    result = run_cli("predict", str(ASTRONAUT), "--model", str(tiny_model_dir), "--onnx", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["face_found"] is True and "warning" not in result.stderr


def test_app_serves_the_onnx_file_from_flag_or_environment(tiny_model_dir: Path, fp32_onnx: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import app

    assert isinstance(app.load_recognizer(str(tiny_model_dir), onnx=str(fp32_onnx)).runtime, OnnxClassifier)
    monkeypatch.setenv("FER_ONNX", str(fp32_onnx))
    assert isinstance(app.load_recognizer(str(tiny_model_dir)).runtime, OnnxClassifier)
    monkeypatch.delenv("FER_ONNX")
    assert not isinstance(app.load_recognizer(str(tiny_model_dir)).runtime, OnnxClassifier)
