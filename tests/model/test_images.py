"""fer_model.images.load_image: every awkward upload -> an upright RGB image or a readable ImageLoadError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_model.images import ImageLoadError, fit_within, load_image
from tests.helpers.image_files import ASTRONAUT, bad_files, odd_images


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    folder = tmp_path_factory.mktemp("images")
    return bad_files(folder), odd_images(folder)


def gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


@pytest.mark.parametrize("name", ["text.jpg", "empty.png", "truncated.jpg", "corrupt.png", "bomb.png", "big.png"])
def test_bad_input_gives_a_readable_error_without_paths(files: tuple[dict, dict], name: str) -> None:
    path, phrase = files[0][name]
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    message = str(caught.value)
    assert phrase in message
    assert str(path.parent) not in message and "Traceback" not in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("name", ["cmyk.jpg", "gray16.png", "rgba.png", "palette.png", "animated.gif", "rotated.jpg"])
def test_odd_encodings_load_as_the_upright_rgb_photo(files: tuple[dict, dict], name: str) -> None:
    image = load_image(files[1][name])
    upright = gray(Image.open(ASTRONAUT))
    assert image.mode == "RGB" and image.size == (512, 512)
    inner = (slice(16, -16), slice(16, -16))  # the RGBA file has a transparent 16-px frame
    assert np.abs(gray(image)[inner] - upright[inner]).mean() < 6.0


def test_exif_orientation_is_honoured(files: tuple[dict, dict]) -> None:
    path = files[1]["rotated.jpg"]
    stored = gray(Image.open(path))  # what a loader that ignores EXIF would return
    upright = gray(Image.open(ASTRONAUT))
    assert np.abs(stored - upright).mean() > 30
    assert np.abs(gray(load_image(path)) - upright).mean() < 6.0


def test_transparency_is_composited_on_white_and_16_bit_is_scaled(files: tuple[dict, dict]) -> None:
    assert load_image(files[1]["rgba.png"]).getpixel((3, 3)) == (255, 255, 255)
    scaled = gray(load_image(files[1]["gray16.png"]))
    assert np.abs(scaled - gray(Image.open(ASTRONAUT))).max() <= 1.0  # scaled by 257, not clipped to white


def test_bytes_file_objects_and_missing_paths(tmp_path: Path) -> None:
    data = ASTRONAUT.read_bytes()
    assert load_image(data).size == load_image(io.BytesIO(data)).size == (512, 512)
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


def test_fit_within_downscales_only_large_images() -> None:
    small = Image.new("RGB", (640, 480))
    assert fit_within(small, 1280) is small
    assert fit_within(Image.new("RGB", (3000, 1500)), 1280).size == (1280, 640)
    assert fit_within(Image.new("RGB", (1000, 4000)), 1280).size == (320, 1280)
