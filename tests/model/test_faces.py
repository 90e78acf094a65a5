"""fer_model.faces.FaceDetector on real photos: counts, coordinates, scaling, margins, parameters."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fer_model.faces import FaceDetector
from tests.helpers.image_files import ASTRONAUT, ASTRONAUT_FACE_REGION, gradient, tile_2x2


def gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"))


def inside(box: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    return region[0] <= x and region[1] <= y and x + w <= region[2] and y + h <= region[3]


def test_astronaut_has_one_face_inside_her_head() -> None:
    boxes = FaceDetector().detect(gray(Image.open(ASTRONAUT)))
    assert len(boxes) == 1
    assert inside(boxes[0], ASTRONAUT_FACE_REGION) and boxes[0][2] >= 60


def test_tile_of_four_gives_four_faces_left_to_right() -> None:
    boxes = FaceDetector().detect(gray(tile_2x2(Image.open(ASTRONAUT))))
    assert len(boxes) == 4
    x0, y0, x1, y1 = ASTRONAUT_FACE_REGION
    regions = [(x0 + dx, y0 + dy, x1 + dx, y1 + dy) for dx in (0, 512) for dy in (0, 512)]
    assert all(sum(inside(box, region) for box in boxes) == 1 for region in regions)  # one face per copy
    assert [box[0] for box in boxes] == sorted(box[0] for box in boxes)  # left to right


def test_gradient_has_no_face() -> None:
    assert FaceDetector().detect(gray(gradient())) == []


def test_boxes_are_mapped_back_from_the_downscaled_copy() -> None:
    small = FaceDetector().detect(gray(Image.open(ASTRONAUT)))[0]
    large = Image.open(ASTRONAUT).resize((2048, 2048), Image.Resampling.BICUBIC)  # detected at 640 px
    (box,) = FaceDetector(detection_size=640).detect(gray(large))
    np.testing.assert_allclose(box, np.array(small) * 4, atol=16)


def test_min_face_size_drops_small_faces() -> None:
    assert FaceDetector(min_face_size=120).detect(gray(Image.open(ASTRONAUT))) == []


def test_expand_adds_the_margin_and_clips_to_the_image() -> None:
    detector = FaceDetector(margin=0.2)
    assert detector.expand((100, 100, 50, 50), (480, 640)) == (90, 90, 70, 70)
    assert detector.expand((0, 5, 100, 100), (100, 120)) == (0, 0, 120, 100)
    assert FaceDetector(margin=0.2, offset=0.1).expand((100, 100, 50, 50), (480, 640)) == (90, 97, 70, 70)  # 7 px lower


@pytest.mark.parametrize("kwargs", [dict(scale_factor=1.0), dict(detection_size=10), dict(margin=2.0),
                                    dict(min_face_size=0), dict(offset=0.6)])
def test_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        FaceDetector(**kwargs)


def test_missing_cascade_and_wrong_input_are_explained() -> None:
    with pytest.raises(FileNotFoundError, match="opencv-python-headless"):
        FaceDetector(cascade="no_such_cascade.xml")
    with pytest.raises(ValueError, match="uint8 HxW grey or HxWx3 RGB"):
        FaceDetector().detect(np.zeros((64, 64, 2), dtype=np.uint8))


def test_tile_of_nine_gives_nine_faces() -> None:
    """A 1536 px 3x3 tile: the faces (~100 px) survive the downscale to detection_size 640."""
    image = Image.open(ASTRONAUT).convert("L")
    tile = Image.new("L", (3 * image.width, 3 * image.height))
    for row in range(3):
        for col in range(3):
            tile.paste(image, (col * image.width, row * image.height))
    assert len(FaceDetector().detect(gray(tile))) == 9
