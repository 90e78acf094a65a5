"""Robust image loading for the app, the CLI and datasets: any upload -> an RGB PIL image, or a readable error.

Users upload anything: text files, half-downloaded JPEGs, 16-bit or CMYK scans, transparent PNGs,
animated GIFs, phone photos that are stored sideways with an EXIF orientation tag, and PNGs whose
header declares 40000x40000 pixels (a "decompression bomb"). `load_image` turns each of these into
an upright RGB image or raises `ImageLoadError` with a message fit to show a user: it names what was
wrong and never includes a stack trace or a server path. `decode_face` opens dataset images the same way.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .image_processing import flatten_mode, gray_face, resize_image

MAX_PIXELS = 50_000_000  # refused before decoding: a 50 MP RGB image already needs 150 MB of memory
MAX_SCANS = 100  # JPEG scans (SOS markers) refused before decoding: cameras write 1, progressive encoders ~10;
# each scan re-decodes the whole image, so a file repeating its scans costs time linear in their count
MAX_IMAGE_SIDE = 30_000  # pixels on either side: phone panoramas stay below; a 1 x 49,000,000 PNG cost 2 GB
MAX_ASPECT = 20  # longest side over shortest, for images longer than MAX_SIDE: panoramas stay below
MAX_SIDE = 1280  # the app (and the recognizer's working copy) downscales larger images to this side
# The only decoders tried: what phones, browsers and scanners produce (JPEG includes MPO, PNG includes APNG).
# PIL's other plugins (EPS via Ghostscript, PSD, ICO, FITS...) are attack surface that no photo needs.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

ImageSource = str | os.PathLike | bytes | BinaryIO


class ImageLoadError(ValueError):
    """The input is not an image this project can use; the message says why, in user terms."""


def load_image(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A file path, bytes or binary file -> an upright RGB image (first frame of animations).

    Raises ImageLoadError for empty, missing, non-image, truncated, corrupt or oversized input. The size
    check reads the header only: a file declaring more than max_pixels is refused before any decoding.
    """
    with _open(source, max_pixels) as image:
        check_header(image, max_pixels)
        try:
            image.seek(0)  # animated GIF/WebP/APNG: the first frame
            image.load()
            return to_rgb(_exif_upright(image))  # always a new image, so closing the file is safe
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, zlib/struct errors...
            raise ImageLoadError(f"the {image.format or 'image'} data is truncated or corrupt "
                                 f"({_short(error)})") from None


def check_header(image: Image.Image, max_pixels: int = MAX_PIXELS) -> None:
    """ImageLoadError for what the header says would cost too much to decode: too many pixels, a side over
    MAX_IMAGE_SIDE, an aspect ratio over MAX_ASPECT, or a JPEG with more than MAX_SCANS scans."""
    width, height = image.size
    if width * height > max_pixels:
        raise ImageLoadError(f"the image is too large: {width}x{height} pixels "
                             f"(the limit is {max_pixels / 1e6:.0f} megapixels); resize it and try again")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ImageLoadError(f"the image is too large: {width}x{height} pixels (the limit is {MAX_IMAGE_SIDE:,} "
                             "pixels a side); resize it and try again")
    if max(width, height) > max(MAX_SIDE, MAX_ASPECT * min(width, height)):
        raise ImageLoadError(f"the image's shape is too extreme: {width}x{height} pixels (the limit is an aspect "
                             f"ratio of {MAX_ASPECT}:1); crop it and try again")
    if image.format in ("JPEG", "MPO") and (scans := jpeg_scans(image)) > MAX_SCANS:
        raise ImageLoadError(f"the JPEG has {scans:,} scans (the limit is {MAX_SCANS}), which looks like a "
                             "decoding bomb; save it again as a normal JPEG")


def jpeg_scans(image: Image.Image) -> int:
    """How many start-of-scan markers the opened JPEG's file holds (an EXIF thumbnail's included): FF DA cannot
    occur inside entropy-coded data, where every FF byte is followed by 00 or a restart marker."""
    position = image.fp.tell()
    try:
        image.fp.seek(0)
        return image.fp.read().count(b"\xff\xda")
    finally:
        image.fp.seek(position)


def decode_face(data: bytes, size: int) -> tuple[np.ndarray, bytes]:
    """A dataset image's bytes -> (size x size uint8 grey face, its encoded bytes), decoded once.

    The same opener as `load_image`. A size x size grey JPEG/PNG (FER2013 itself) keeps its bytes; anything
    else becomes a face through the pixel module (`gray_face`: the model's grey conversion and resize), as PNG.
    """
    with _open(data) as image:
        try:
            image.load()
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, zlib/struct errors...
            raise ImageLoadError(f"the {image.format or 'image'} data is truncated or corrupt "
                                 f"({_short(error)})") from None
        if image.mode == "L" and image.size == (size, size) and image.format in ("JPEG", "PNG"):
            return np.asarray(image), bytes(data)
        face = gray_face(image, size)
    return face, png_bytes(face)


def png_bytes(face: np.ndarray) -> bytes:
    """A uint8 grey array as PNG bytes (what a datasets Image column stores)."""
    buffer = io.BytesIO()
    Image.fromarray(face, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _open(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """PIL.Image.open (header only) with every failure turned into an ImageLoadError."""
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    if not isinstance(source, (str, os.PathLike)) and not hasattr(source, "read"):
        raise ImageLoadError(f"no image data received (expected a file, got {type(source).__name__})")
    try:
        if _is_empty(source):
            raise ImageLoadError("the file is empty (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            return Image.open(source, formats=FORMATS)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except IsADirectoryError:
        raise ImageLoadError("this is a folder, not an image file") from None
    except Image.DecompressionBombError as error:  # raised by Image.open from the header, before decoding
        declared = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(declared[1]) / 1e6:,.0f}" if declared else f"more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f}"
        raise ImageLoadError(f"the image is too large: it declares {size} megapixels (the limit is "
                             f"{max_pixels / 1e6:.0f} megapixels), which looks like a decompression bomb") from None
    except UnidentifiedImageError:
        raise ImageLoadError("this is not an image file that can be read "
                             "(use JPEG, PNG, WebP, GIF, BMP or TIFF)") from None
    except PermissionError:
        raise ImageLoadError("the file cannot be read (permission denied)") from None
    except Exception as error:
        raise ImageLoadError(f"the file cannot be read as an image ({_short(error)})") from None


def _is_empty(source: ImageSource) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return os.path.getsize(source) == 0  # FileNotFoundError is reported by the caller
    position = source.tell()
    empty = not source.read(1)
    source.seek(position)
    return empty


def _exif_upright(image: Image.Image) -> Image.Image:
    """Honour the EXIF orientation tag; a broken EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB, through the pixel module's one mode conversion (`flatten_mode`)."""
    return flatten_mode(image).convert("RGB")


def fit_within(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """A copy no larger than max_side on its longest side (aspect kept); small images are returned as is.

    Shrunk with the pixel module's one resize kernel (`resize_image`): what the app shows and recognizes.
    """
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    return resize_image(image, (max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def _short(error: Exception) -> str:
    """An exception as a short user-facing phrase, without any file-system path (or markup: UIs render HTML)."""
    message = str(error).split("\n")[0]
    if os.sep in message or not message or any(c in message for c in "<>&"):
        return type(error).__name__
    return message[:160]
