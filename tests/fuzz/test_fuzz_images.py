"""Fuzzing the image path in-process: load_image on hostile bytes and damaged files, the recognizer on any image.

Every call must return within 2 s and give either the documented result (an RGB image; the recognizer's JSON
schema) or the documented error (ImageLoadError / ValueError) with a readable message: no stack trace, no
file-system path. Decompression bombs must be refused from their header, before any pixel is decoded.
Input counts are written to tests/artifacts/fuzz_counts.json (and printed with `pytest -s`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from fer_model import EmotionRecognizer
from fer_model.images import FORMATS as LOADABLE_FORMATS
from fer_model.images import ImageLoadError, load_image
from tests.helpers.fuzz_inputs import (
    BOMB_WRITERS,
    COUNTS,
    MODES,
    PER_CALL_LIMIT_S,
    FuzzFile,
    assert_user_readable,
    check_schema,
    damaged_files,
    make_image,
    peak_rss_mb,
    random_bytes,
    real_png_bomb,
    record_counts,
)
from tests.helpers.paths import REPO

FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # PIL warns about each corrupt TIFF/EXIF block
SECRET_DIR = "server-side-folder-7f3a"  # uploads are written under it: no message may mention it


@pytest.fixture(scope="module", autouse=True)
def counts() -> None:
    yield
    print("\nfuzz inputs tried:", record_counts())


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / SECRET_DIR
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def recognizer(tiny_model_dir: Path) -> EmotionRecognizer:
    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir)
    recognizer.recognize(Image.new("RGB", (64, 64)))  # warm-up: first-call costs are not what we time
    return recognizer


def timed_load(source) -> tuple[Image.Image | None, str | None]:
    start = time.perf_counter()
    try:
        image, message = load_image(source), None
    except ImageLoadError as error:
        image, message = None, str(error)
    elapsed = time.perf_counter() - start
    assert elapsed < PER_CALL_LIMIT_S, f"load_image took {elapsed:.2f} s"
    if image is not None:
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.width >= 1 and image.height >= 1
    return image, message


@settings(max_examples=2000, **FUZZ)
@given(random_bytes())
def test_load_image_on_random_bytes(data: bytes) -> None:
    COUNTS["load_image: random bytes"] += 1
    _, message = timed_load(data)
    if message is not None:
        assert_user_readable(message)


@settings(max_examples=800, **FUZZ)
@given(file=damaged_files(), as_path=st.booleans())
def test_load_image_on_damaged_files(upload_dir: Path, file: FuzzFile, as_path: bool) -> None:
    COUNTS["load_image: encoded files (intact/truncated/flipped/spliced)"] += 1
    source: bytes | Path = file.data
    if as_path:
        source = upload_dir / f"upload.{file.fmt.lower()}"
        source.write_bytes(file.data)
    image, message = timed_load(source)
    if file.damage == "intact":
        assert image is not None and image.size == file.size, (file, message)
    if message is not None:
        assert_user_readable(message, upload_dir, SECRET_DIR)


# ------------------------------------------------------------------ the recognizer

EXTREME_SIZES = [(1, 1), (1, 1500), (1500, 1), (2, 2000), (2000, 3), (1, 1281), (1281, 1), (7, 640), (512, 1914),
                 (2000, 2000)]
ARRAY_KINDS = ["gray uint8", "rgb uint8", "rgba uint8", "gray uint16", "rgb float32", "gray float64"]


def as_array(image: Image.Image, kind: str, seed: int) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"))
    gray = np.asarray(image.convert("L"))
    alpha = np.random.default_rng(seed).integers(0, 256, gray.shape, dtype=np.uint8)
    return {"gray uint8": lambda: gray, "rgb uint8": lambda: rgb,
            "rgba uint8": lambda: np.dstack([rgb, alpha]), "gray uint16": lambda: gray.astype(np.uint16) * 257,
            "rgb float32": lambda: rgb.astype(np.float32) / 255, "gray float64": lambda: gray / 255.0}[kind]()


@st.composite
def images(draw: st.DrawFn) -> tuple[str, Image.Image | np.ndarray, tuple[int, int]]:
    size = draw(st.one_of(st.tuples(st.integers(1, 2000), st.integers(1, 2000)), st.sampled_from(EXTREME_SIZES)))
    content = draw(st.sampled_from(["noise", "flat", "astronaut"]))
    seed = draw(st.integers(0, 2**31))
    kind = draw(st.sampled_from(["PIL " + mode for mode in [*MODES, "I", "F"]] + ARRAY_KINDS))
    if kind.startswith("PIL "):
        mode = kind.removeprefix("PIL ")
        image = make_image(mode if mode not in ("I", "F") else "L", size, seed, content)
        return kind, image.convert(mode) if mode in ("I", "F") else image, size
    return kind, as_array(make_image("RGB", size, seed, content), kind, seed), size


@settings(max_examples=50, **FUZZ)
@given(images())
def test_recognizer_on_random_images(recognizer: EmotionRecognizer, drawn: tuple) -> None:
    kind, image, size = drawn
    COUNTS["recognizer: images of random size/mode"] += 1
    start = time.perf_counter()
    result = recognizer.recognize(image)
    elapsed = time.perf_counter() - start
    assert elapsed < PER_CALL_LIMIT_S, f"recognize({kind} {size}) took {elapsed:.2f} s"
    check_schema(result, recognizer.labels, size)


@pytest.mark.parametrize("size", EXTREME_SIZES)
def test_recognizer_on_extreme_shapes(recognizer: EmotionRecognizer, size: tuple[int, int]) -> None:
    """Strips like 1x1500 once crashed the face detector's resize (width rounded to 0 px); 512x1914 without a face
    was boxed 511 px wide (the working copy's size scaled back)."""
    COUNTS["recognizer: extreme shapes"] += 1
    check_schema(recognizer.recognize(make_image("RGB", size, 0)), recognizer.labels, size)


@pytest.mark.parametrize("bad", [np.zeros((0, 10)), np.zeros((10, 0, 3)), np.zeros((4, 4, 2)), np.zeros((2, 3, 4, 5)),
                                 np.full((8, 8), np.nan), "photo.jpg", None],
                         ids=["0-rows", "0-cols", "2-channels", "4-d", "nan", "a path string", "None"])
def test_recognizer_refuses_non_images_with_a_value_error(recognizer: EmotionRecognizer, bad) -> None:
    COUNTS["recognizer: non-images"] += 1
    with pytest.raises(ValueError) as caught:
        recognizer.recognize(bad)
    assert_user_readable(str(caught.value))


# ------------------------------------------------------------------ decompression bombs

@pytest.fixture
def decode_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every attempt to decode pixels (ImageFile.load), so a test can assert there was none."""
    calls: list[str] = []
    original = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile):
        calls.append(f"{self.format} {self.size}")
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


@pytest.mark.parametrize("fmt", list(BOMB_WRITERS))
@pytest.mark.parametrize("side", [40_000, 8_000], ids=["40000px", "8000px"])
def test_bombs_are_refused_from_the_header(decode_spy: list[str], fmt: str, side: int) -> None:
    """40000x40000 (1600 MP; WebP's maximum 16383x16383) trips PIL's own guard in Image.open; 8000x8000
    (64 MP) is under PIL's guard but over our 50 MP limit, checked before load(). Neither is decoded."""
    COUNTS["bombs: load_image"] += 1
    data = BOMB_WRITERS[fmt](side, side)
    peak_before = peak_rss_mb()
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match="the image is too large") as caught:
        load_image(data)
    assert time.perf_counter() - start < 0.5
    assert decode_spy == [], "pixels were decoded"
    assert peak_rss_mb() - peak_before < 50  # decoding even the 8000 px one would need 64+ MB
    message = str(caught.value)
    assert "megapixels" in message and "50 megapixels" in message
    if side == 8_000:
        assert "8000x8000 pixels" in message
    else:
        assert "decompression bomb" in message


def test_a_real_png_bomb_is_not_decoded(decode_spy: list[str]) -> None:
    """A complete, valid 10000x10000 PNG (100 MP of zeros in ~100 KB) is refused without inflating it."""
    COUNTS["bombs: load_image"] += 1
    data = real_png_bomb()
    assert len(data) < 500_000
    peak_before = peak_rss_mb()
    with pytest.raises(ImageLoadError, match=r"10000x10000 pixels \(the limit is 50 megapixels\)"):
        load_image(data)
    assert decode_spy == [] and peak_rss_mb() - peak_before < 50


@pytest.mark.parametrize("fmt", ["EPS", "ICO", "PSD", "PPM", "TGA", "PCX"])
def test_only_photo_formats_are_decoded(tmp_path: Path, fmt: str) -> None:
    """PIL's other decoders (EPS would run Ghostscript) are not attack surface the app exposes."""
    COUNTS["load_image: other PIL formats"] += 1
    assert fmt not in LOADABLE_FORMATS
    path = tmp_path / f"photo.{fmt.lower()}"
    if fmt == "PSD":  # PIL reads PSD but cannot write it: a minimal 1x1 greyscale PSD
        path.write_bytes(b"8BPS\x00\x01" + b"\x00" * 6 + b"\x00\x01" + b"\x00\x00\x00\x01" * 2 + b"\x00\x08\x00\x01"
                         + b"\x00" * 12 + b"\x00\x00\x00")
    else:
        Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB").save(path, fmt)
    with pytest.raises(ImageLoadError, match="not an image file that can be read"):
        load_image(path)
