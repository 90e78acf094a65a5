"""The folder's int8 ONNX file by default: fingerprints, what is refused, legacy files, temperature, the CLI."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from fer_model import EmotionRecognizer, FerForImageClassification
from fer_model.__main__ import main
from fer_model.calibration import write_temperature
from fer_model.data import load_fer2013
from fer_model.evaluation import evaluate_folder
from fer_model.onnx_runtime import (
    CONFIG_KEY,
    INT8_FILENAME,
    WEIGHTS_KEY,
    OnnxClassifier,
    OnnxMismatchError,
    check_belongs,
    export_onnx,
    onnx_choice,
)
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.models import save_random_model
from tests.helpers.paths import RELEASED_MODEL_DIR, needs_released_model
from tests.helpers.tiny_fer import write_hub_folder

LABELS_REVERSED = dict(enumerate(["surprise", "sad", "neutral", "happy", "fear", "disgust", "angry"]))


@pytest.fixture(scope="module")
def exports(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32 exports (the selection logic does not depend on int8): of the folder's own weights, of another
    model's weights, of the same weights under another label order, and an own one stripped of its fingerprint."""
    root = tmp_path_factory.mktemp("exports")
    own = export_onnx(FerForImageClassification.from_pretrained(tiny_model_dir), root / "own.onnx")
    other = FerForImageClassification.from_pretrained(save_random_model(root / "other-model", seed=1))
    relabelled = FerForImageClassification.from_pretrained(save_random_model(root / "relabelled-model",
                                                                             id2label=LABELS_REVERSED))
    proto = onnx.load(str(own))
    del proto.metadata_props[:]
    onnx.save(proto, str(root / "legacy.onnx"))
    return {"own": own, "other": export_onnx(other, root / "other.onnx"), "legacy": root / "legacy.onnx",
            "relabelled": export_onnx(relabelled, root / "relabelled.onnx")}


def folder_with(tiny_model_dir: Path, tmp_path: Path, int8_file: Path | None) -> Path:
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    if int8_file is not None:
        shutil.copyfile(int8_file, folder / INT8_FILENAME)
    return folder


def test_export_writes_the_fingerprint_of_its_weights(tiny_model_dir: Path, exports: dict[str, Path]) -> None:
    model = FerForImageClassification.from_pretrained(tiny_model_dir)
    metadata = OnnxClassifier(exports["own"]).metadata
    assert len(metadata[WEIGHTS_KEY]) == 64 and '"image_size": 48' in metadata[CONFIG_KEY]
    assert check_belongs(OnnxClassifier(exports["own"]), model) is True
    with torch.no_grad():
        model.head.fc2.bias[0] += 1e-3  # one weight changed: another model
    with pytest.raises(OnnxMismatchError, match="other weights"):
        check_belongs(OnnxClassifier(exports["own"]), model)
    assert check_belongs(OnnxClassifier(exports["legacy"]), model) is False
    base = FerForImageClassification.from_pretrained(tiny_model_dir)
    with pytest.raises(OnnxMismatchError, match="id2label"):
        check_belongs(OnnxClassifier(exports["relabelled"]), base)


def test_the_folders_file_is_used_by_default_and_pytorch_on_request(tiny_model_dir: Path, exports: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    folder = folder_with(tiny_model_dir, tmp_path, exports["own"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a verified file: no warning
        runtime = EmotionRecognizer.from_pretrained(folder).runtime
    assert isinstance(runtime, OnnxClassifier) and runtime.path == folder / INT8_FILENAME
    for choice in (None, "none", "NONE"):
        assert not isinstance(EmotionRecognizer.from_pretrained(folder, onnx=choice).runtime, OnnxClassifier)
    assert not isinstance(EmotionRecognizer.from_pretrained(tiny_model_dir).runtime, OnnxClassifier)  # none there


def test_a_file_from_other_weights_is_skipped_or_refused(tiny_model_dir: Path, exports: dict[str, Path],
                                                         tmp_path: Path) -> None:
    folder = folder_with(tiny_model_dir, tmp_path, exports["other"])
    with pytest.warns(UserWarning, match="other weights.*Serving the PyTorch model"):
        recognizer = EmotionRecognizer.from_pretrained(folder)
    assert not isinstance(recognizer.runtime, OnnxClassifier)
    with pytest.raises(OnnxMismatchError, match="other weights"):
        EmotionRecognizer.from_pretrained(tiny_model_dir, onnx=exports["other"])
    test = load_fer2013(write_hub_folder(tmp_path / "data", sizes={"test": 7}), splits=("test",))["test"]
    with pytest.raises(OnnxMismatchError, match="export it again"):
        evaluate_folder(tiny_model_dir, test, onnx=exports["other"])
    assert evaluate_folder(tiny_model_dir, test, onnx=exports["own"])["onnx"] == str(exports["own"])


def test_a_file_without_fingerprint_is_used_with_a_warning(tiny_model_dir: Path, exports: dict[str, Path],
                                                           tmp_path: Path) -> None:
    folder = folder_with(tiny_model_dir, tmp_path, exports["legacy"])
    with pytest.warns(UserWarning, match="no fingerprint.*export-onnx --int8"):
        runtime = EmotionRecognizer.from_pretrained(folder).runtime
    assert isinstance(runtime, OnnxClassifier)


def test_onnx_serves_the_folders_temperature(tiny_model_dir: Path, exports: dict[str, Path], tmp_path: Path) -> None:
    """Calibrating after the export keeps the file valid (config.json only changes) and ONNX applies the new T."""
    folder = folder_with(tiny_model_dir, tmp_path, exports["own"])
    write_temperature(folder, 2.0)
    onnx_recognizer = EmotionRecognizer.from_pretrained(folder, tta="flip")
    torch_recognizer = EmotionRecognizer.from_pretrained(folder, tta="flip", onnx=None)
    assert isinstance(onnx_recognizer.runtime, OnnxClassifier) and onnx_recognizer.runtime.temperature == 2.0
    pixel_values = torch.randn(3, 3, 48, 48)
    with torch.inference_mode():
        raw = torch_recognizer.model.uncalibrated_logits(pixel_values)
    torch.testing.assert_close(onnx_recognizer.runtime(pixel_values), raw / 2.0, atol=1e-4, rtol=1e-4)
    crop = Image.open(ASTRONAUT).convert("RGB").crop((150, 40, 300, 210))
    np.testing.assert_allclose(onnx_recognizer.classify([crop]), torch_recognizer.classify([crop]), atol=1e-5)


def test_choice_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FER_ONNX", raising=False)
    assert onnx_choice() == "auto" and onnx_choice("x.onnx") == "x.onnx"
    monkeypatch.setenv("FER_ONNX", "none")
    assert onnx_choice() == "none" and onnx_choice("x.onnx") == "x.onnx"
    assert onnx_choice("x.onnx", no_onnx=True) == "none"


def test_cli_predict_default_no_onnx_and_a_foreign_file(tiny_model_dir: Path, exports: dict[str, Path],
                                                        tmp_path: Path, capsys: pytest.CaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FER_ONNX", raising=False)
    folder = folder_with(tiny_model_dir, tmp_path, exports["legacy"])  # the runtime used shows in the warning
    assert main(["predict", str(ASTRONAUT), "--model", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("warning: ") and "no fingerprint" in err and '"face_found": true' in out
    assert main(["predict", str(ASTRONAUT), "--model", str(folder), "--no-onnx"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("FER_ONNX", "none")
    assert main(["predict", str(ASTRONAUT), "--model", str(folder)]) == 0
    assert capsys.readouterr().err == ""
    assert main(["predict", str(ASTRONAUT), "--model", str(folder), "--onnx", str(exports["other"])]) == 1
    assert "other weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --onnx and --no-onnx contradict each other
        main(["predict", str(ASTRONAUT), "--model", str(folder), "--onnx", "x.onnx", "--no-onnx"])


@needs_released_model
def test_released_folder_serves_its_int8_file() -> None:
    """The release's model_int8.onnx is served by default: silently when its fingerprint matches the folder's
    weights (releases since 2026-12-04), with the "no fingerprint" warning when it predates fingerprints."""
    fingerprinted = WEIGHTS_KEY in {p.key for p in onnx.load(str(RELEASED_MODEL_DIR / INT8_FILENAME)).metadata_props}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recognizer = EmotionRecognizer.from_pretrained(RELEASED_MODEL_DIR)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any("no fingerprint" in m for m in messages) is not fingerprinted, messages
    assert not any("other weights" in m or "differs" in m for m in messages), messages
    assert isinstance(recognizer.runtime, OnnxClassifier)
    assert recognizer.runtime.path == RELEASED_MODEL_DIR / INT8_FILENAME
    assert recognizer.recognize(Image.open(ASTRONAUT))["face_found"] is True
