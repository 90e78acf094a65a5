"""The face detector behind one interface (fer_model.faces.Detector): choices by name in EmotionRecognizer, the CLI
and the app's header; any object with detect + expand works; tiny and odd images give no error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_model import EmotionRecognizer
from fer_model.__main__ import main
from fer_model.faces import DEFAULT_DETECTOR, DETECTORS, FaceDetector, ProfileFaceDetector, make_detector
from tests.helpers.image_files import ASTRONAUT, CAMERAMAN, no_face_images


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_each_detector_on_tiny_and_no_face_images(name: str) -> None:
    detector = make_detector(name)
    assert detector.name == name
    for shape in [(1, 1), (2, 300), (300, 2), (47, 47), (64, 64)]:
        assert detector.detect(np.zeros(shape, np.uint8)) == []
    for image in no_face_images().values():
        assert detector.detect(np.asarray(image.convert("L"))) == []
    (box,) = detector.detect(np.asarray(Image.open(ASTRONAUT).convert("L")))
    assert box == (175, 66, 98, 98)  # the frontal cascade's box in both
    with pytest.raises(ValueError, match="uint8 HxW grey"):
        detector.detect(np.zeros((64, 64, 3), np.uint8))


def test_the_profile_detector_finds_a_turned_head_the_frontal_one_misses() -> None:
    gray = np.asarray(Image.open(CAMERAMAN).convert("L"))
    assert make_detector("haar").detect(gray) == []
    (x, y, w, h) = make_detector("haar-profile").detect(gray)[0]
    assert 120 <= x + w / 2 <= 260 and 100 <= y + h / 2 <= 200  # the cameraman's head, upper middle of the photo


def test_names_objects_and_errors() -> None:
    assert DEFAULT_DETECTOR == "haar" and isinstance(make_detector(None), FaceDetector)
    assert type(make_detector("haar-profile")) is ProfileFaceDetector
    custom = FaceDetector(min_face_size=64)
    assert make_detector(custom) is custom
    with pytest.raises(ValueError, match="detector='yolo' is not one of \\['haar', 'haar-profile'\\]"):
        make_detector("yolo")


def test_recognizer_uses_the_detector_given(tiny_model_dir: Path) -> None:
    class Corner:
        """A stand-in detector: one fixed box, whatever the image."""

        name = "corner"

        def detect(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
            return [(0, 0, 48, 48)]

        def expand(self, box: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
            return box

    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir, detector=Corner())
    result = recognizer.recognize(no_face_images()["blank"])
    assert result["face_found"] is True and [face["box"] for face in result["faces"]] == [[0, 0, 48, 48]]
    assert EmotionRecognizer.from_pretrained(tiny_model_dir, detector="haar-profile").detector.name == "haar-profile"


def test_cli_detector_option(tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    for detector, found in (("haar", False), ("haar-profile", True)):
        assert main(["predict", str(CAMERAMAN), "--model", str(tiny_model_dir), "--detector", detector]) == 0
        assert json.loads(capsys.readouterr().out)["face_found"] is found
    with pytest.raises(SystemExit):
        main(["predict", str(CAMERAMAN), "--detector", "yolo"])
    assert "invalid choice: 'yolo'" in capsys.readouterr().err


def test_app_header_names_the_detector(recognizer: EmotionRecognizer) -> None:
    import app

    assert app.detector_title(recognizer) == "detector `haar`: OpenCV's frontal Haar cascade"
    assert app.parse_args(["--detector", "haar-profile"]).detector == "haar-profile"
