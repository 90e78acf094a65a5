"""FerImageProcessor: every input kind and PIL mode -> the same normalised grey pixel_values; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fer_model import FerImageProcessor
from fer_model.configuration import IMAGENET_MEAN, IMAGENET_STD

processor = FerImageProcessor()
MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def gray_of(pixel_values: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: the grey plane the processor saw (all 3 channels must agree)."""
    gray = pixel_values * STD + MEAN
    torch.testing.assert_close(gray[:, 0], gray[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(gray[:, 0], gray[:, 2], atol=1e-5, rtol=0)
    return gray[:, 0]


def gradient(width: int = 64, height: int = 48) -> np.ndarray:
    return np.tile(np.linspace(0, 255, width, dtype=np.float32), (height, 1)).astype(np.uint8)


def test_output_is_a_normalised_three_channel_batch() -> None:
    out = processor(Image.fromarray(gradient()), return_tensors="pt")
    assert set(out.keys()) == {"pixel_values"}
    assert out["pixel_values"].shape == (1, 3, 48, 48) and out["pixel_values"].dtype == torch.float32
    gray = gray_of(out["pixel_values"])
    assert gray.min() >= 0 and gray.max() <= 1
    assert gray[0, :, 0].mean() < 0.05 and gray[0, :, -1].mean() > 0.95  # left dark, right bright


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "CMYK", "I;16", "I", "F", "1", "YCbCr"])
def test_every_pil_mode_gives_the_same_grey(mode: str) -> None:
    base = Image.fromarray(gradient())
    reference = gray_of(processor(base)["pixel_values"])
    if mode == "I;16":
        image = Image.fromarray(np.asarray(base).astype(np.uint16) * 257)
    elif mode == "I":
        image = Image.fromarray(np.asarray(base).astype(np.int32) * 257)
    elif mode == "F":
        image = Image.fromarray(np.asarray(base).astype(np.float32) / 255.0)
    else:
        image = base.convert(mode)
    assert image.mode == mode
    gray = gray_of(processor(image)["pixel_values"])
    tolerance = 0.5 if mode == "1" else 0.03  # 1-bit dithers; CMYK/palette round-trip loses a little
    assert (gray - reference).abs().mean() < tolerance, mode


def test_transparent_pixels_become_white() -> None:
    rgba = np.zeros((48, 48, 4), dtype=np.uint8)  # black, fully transparent
    gray = gray_of(processor(Image.fromarray(rgba))["pixel_values"])
    assert torch.allclose(gray, torch.ones_like(gray))


@pytest.mark.parametrize(
    "array",
    [
        gradient(),
        gradient()[..., None],
        np.repeat(gradient()[..., None], 3, axis=-1),
        np.concatenate([np.repeat(gradient()[..., None], 3, -1), np.full((48, 64, 1), 255, np.uint8)], -1),
        gradient().astype(np.float32) / 255.0,
        gradient().astype(np.float64),
        gradient().astype(np.uint16) * 257,
    ],
    ids=["HxW", "HxWx1", "HxWx3", "HxWx4", "float01", "float255", "uint16"],
)
def test_numpy_arrays(array: np.ndarray) -> None:
    reference = gray_of(processor(Image.fromarray(gradient()))["pixel_values"])
    gray = gray_of(processor(array)["pixel_values"])
    assert (gray - reference).abs().max() < 0.01


def test_torch_tensors_are_channels_first() -> None:
    reference = gray_of(processor(Image.fromarray(gradient()))["pixel_values"])
    chw = torch.from_numpy(np.repeat(gradient()[None], 3, axis=0))
    for tensor in (chw, chw[0], chw.float() / 255):
        assert (gray_of(processor(tensor)["pixel_values"]) - reference).abs().max() < 0.01


def test_batches() -> None:
    images = [Image.fromarray(gradient()), gradient(30, 90), torch.zeros(1, 20, 20)]
    assert processor(images)["pixel_values"].shape == (3, 3, 48, 48)
    assert processor(np.zeros((5, 40, 40, 3), np.uint8))["pixel_values"].shape == (5, 3, 48, 48)
    assert processor(torch.zeros(6, 3, 40, 40))["pixel_values"].shape == (6, 3, 48, 48)
    numpy_out = processor([gradient()], return_tensors=None)["pixel_values"]
    assert isinstance(numpy_out, np.ndarray) and numpy_out.shape == (1, 3, 48, 48)


def test_image_size_follows_the_config() -> None:
    assert FerImageProcessor(image_size=64)(gradient())["pixel_values"].shape == (1, 3, 64, 64)


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (np.zeros((0, 48), np.uint8), "empty image array"),
        (np.zeros((48,), np.uint8), "is not HxW"),
        (np.zeros((48, 48, 2), np.uint8), "is not HxW"),
        (np.zeros((1, 2, 48, 48, 3), np.uint8), "is not HxW"),
        (np.array([[np.nan, 0.0], [0.0, 0.0]]), "NaN"),
        (np.array([["a", "b"]]), "dtype"),
        ("face.jpg", "unsupported image type str"),
        ({"pixels": 1}, "unsupported image type dict"),
        (None, "unsupported image type NoneType"),
        ([], "empty list"),
        (Image.new("L", (0, 0)), "empty image"),
    ],
)
def test_garbage_is_a_clear_value_error(garbage: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        processor(garbage)
