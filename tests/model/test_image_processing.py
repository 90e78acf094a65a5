"""FerImageProcessor: every input kind and PIL mode -> the same normalised grey pixel_values; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fer_model import EmotionRecognizer, FerImageProcessor
from fer_model.configuration import IMAGENET_MEAN, IMAGENET_STD
from fer_model.face_boxes import levelled_crop
from fer_model.image_processing import gray_to_pixel_values, to_gray
from fer_model.images import load_image, to_rgb
from fer_model.retina import missing_reason
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.models import save_random_model
from tests.helpers.tiny_fer import faces

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


def in_mode(mode: str) -> Image.Image:
    """The gradient in any PIL mode (16-bit ones hold the 8-bit values x 257, float ones 0..1)."""
    base = Image.fromarray(gradient())
    wide = np.asarray(base).astype(np.uint16) * 257
    if mode.startswith("I;16"):
        dtype = {"I;16B": ">u2", "I;16N": "=u2"}.get(mode, "<u2")
        return Image.frombytes(mode, base.size, wide.astype(dtype).tobytes())
    if mode in ("I", "F"):
        return Image.fromarray(wide.astype(np.int32) if mode == "I" else np.asarray(base).astype(np.float32) / 255.0)
    return base.convert({"La": "LA", "RGBa": "RGBA"}.get(mode, mode)).convert(mode)  # PIL: La / RGBa via LA / RGBA


@pytest.mark.parametrize("mode", Image.MODES)
def test_every_pil_mode_gives_the_same_grey(mode: str) -> None:
    reference = gray_of(processor(Image.fromarray(gradient()))["pixel_values"])
    image = in_mode(mode)
    assert image.mode == mode
    gray = gray_of(processor(image)["pixel_values"])
    tolerance = 0.5 if mode == "1" else 0.03  # 1-bit dithers; CMYK/palette/LAB round-trips lose a little
    assert (gray - reference).abs().mean() < tolerance, mode


@pytest.mark.parametrize("mode", Image.MODES)
def test_file_loading_and_the_processor_share_one_mode_conversion(mode: str) -> None:
    """load_image's RGB (images.to_rgb) holds exactly the grey the processor reads from the original mode."""
    image = in_mode(mode)
    np.testing.assert_allclose(to_gray(to_rgb(image)), to_gray(image), atol=1e-5, rtol=0)


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


# --- one pixel path: training / evaluation, the processor and the recognizer ------------------------


def pixels_reaching_the_model(recognizer: EmotionRecognizer, image: object) -> tuple[dict, torch.Tensor]:
    """recognize(image) (the whole image when no face is found), and the pixel_values its runtime (the model, or
    ONNX) was given."""
    seen: list[torch.Tensor] = []
    runtime = recognizer.runtime
    recognizer.runtime = lambda pixel_values: seen.append(pixel_values.clone()) or runtime(pixel_values)
    try:
        return recognizer.recognize(image, whole_image=True), torch.cat(seen)
    finally:
        recognizer.runtime = runtime


@pytest.mark.parametrize("image_size", [48, 64, 96])
def test_training_processor_and_recognizer_give_the_same_pixel_values(tmp_path, image_size: int) -> None:
    """uint8 grey faces (FER's 48 px, and 120 px ones that must be shrunk) through gray_to_pixel_values (train.py,
    evaluation), FerImageProcessor and EmotionRecognizer (no face is detected in these: each is a whole crop, classified
    with whole_image=True)."""
    small, _ = faces(4, seed=image_size)
    large = np.stack([np.asarray(Image.fromarray(f).resize((120, 120), Image.Resampling.BICUBIC)) for f in small])
    recognizer = EmotionRecognizer.from_pretrained(save_random_model(tmp_path / "model", image_size=image_size))
    for images in (small, large):
        check_one_pixel_path(images, recognizer)


def check_one_pixel_path(images: np.ndarray, recognizer: EmotionRecognizer) -> None:
    config = recognizer.model.config
    training = gray_to_pixel_values(torch.from_numpy(images)[:, None], config)
    assert training.shape == (len(images), 3, config.image_size, config.image_size)
    processor = FerImageProcessor.from_model_config(config)
    torch.testing.assert_close(processor([Image.fromarray(f) for f in images])["pixel_values"], training,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(processor(images[..., None])["pixel_values"], training, atol=1e-5, rtol=0)  # NxHxWx1
    for face, expected in zip(images, training, strict=True):
        for image in (Image.fromarray(face), Image.fromarray(face).convert("RGB"), face):
            result, seen = pixels_reaching_the_model(recognizer, image)
            assert result["face_found"] is False
            torch.testing.assert_close(seen, expected[None], atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", [512, 2560])  # 2560 px: detection runs on a working copy, the crop does not
@pytest.mark.parametrize("detector", ["haar", "retinaface"])
def test_recognizer_crops_come_from_the_input_through_the_processor(tiny_model_dir, side: int, detector: str) -> None:
    if detector == "retinaface" and missing_reason():
        pytest.skip(missing_reason())
    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir, detector=detector)
    image = load_image(ASTRONAUT).resize((side, side), Image.Resampling.BICUBIC)
    result, seen = pixels_reaching_the_model(recognizer, image)
    (face,) = result["faces"]
    x, y, w, h = recognizer.detector.expand(tuple(face["box"]), (image.height, image.width))
    crop = image.crop((x, y, x + w, y + h))
    if detector == "retinaface":  # the same crop of the input, turned so that the eyes (found on the copy) are level
        working, scale = recognizer.working_image(image)
        ((_, eyes),) = recognizer.detector.faces(working)
        crop = levelled_crop(image, (x, y, w, h), tuple((ex / scale, ey / scale) for ex, ey in eyes))
    expected = recognizer.processor(crop, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(seen, expected, atol=0, rtol=0)
