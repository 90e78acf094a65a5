"""Awkward image files written on the fly, shared by the loader, app and CLI tests.

`bad_files` are inputs that must give a readable error (the expected phrase is the value);
`odd_images` are valid but unusual encodings of the astronaut photo that must still give its one face.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests.helpers.paths import REPO

ASTRONAUT = REPO / "examples" / "astronaut.jpg"
GROUP = REPO / "examples" / "group.jpg"
CAT = REPO / "examples" / "cat.jpg"  # a photo with no person: no face, no emotion
CAMERAMAN = REPO / "examples" / "cameraman.jpg"  # a head turned three-quarters
ASTRONAUT_FACE_REGION = (150, 40, 300, 210)  # x0, y0, x1, y1 of Eileen Collins' head in astronaut.jpg
EXIF_ORIENTATION = 0x0112


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares width x height (a decompression bomb is only its header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    pixels = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a phrase the error message must contain)."""
    astronaut = ASTRONAUT.read_bytes()
    png = io.BytesIO()
    Image.open(ASTRONAUT).save(png, format="PNG")
    png_bytes = png.getvalue()
    idat = png_bytes.index(b"IDAT") + 4
    files = {
        "text.jpg": (b"this is a text file, not a photo\n", "not an image file"),
        "empty.png": (b"", "empty"),
        "truncated.jpg": (astronaut[: len(astronaut) // 2], "truncated or corrupt"),
        "corrupt.png": (png_bytes[:idat] + bytes(range(256)) * 64 + png_bytes[idat + 16384 :], "truncated or corrupt"),
        "bomb.png": (png_declaring(40000, 40000), "too large"),
        "big.png": (png_declaring(8000, 8000), "8000x8000"),
    }
    paths = {}
    for name, (data, phrase) in files.items():
        (folder / name).write_bytes(data)
        paths[name] = (folder / name, phrase)
    return paths


def odd_images(folder: Path) -> dict[str, Path]:
    """name -> the astronaut photo in an unusual mode, container or orientation."""
    upright = Image.open(ASTRONAUT).convert("RGB")
    gray16 = (np.asarray(upright.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    rgba = upright.convert("RGBA")
    alpha = Image.new("L", upright.size, 0)  # a transparent 16-px frame, which must come out white
    alpha.paste(255, (16, 16, upright.width - 16, upright.height - 16))
    rgba.putalpha(alpha)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    second_frame = Image.linear_gradient("L").resize(upright.size).convert("RGB")
    writers = {
        "cmyk.jpg": lambda p: upright.convert("CMYK").save(p, quality=92),
        "gray16.png": lambda p: Image.fromarray(gray16).save(p),
        "rgba.png": lambda p: rgba.save(p),
        "palette.png": lambda p: upright.convert("P", palette=Image.Palette.ADAPTIVE).save(p),
        "animated.gif": lambda p: upright.save(p, save_all=True, append_images=[second_frame], duration=100, loop=0),
        "rotated.jpg": lambda p: upright.rotate(90, expand=True).save(p, exif=exif, quality=92),
    }
    paths = {}
    for name, write in writers.items():
        write(folder / name)
        paths[name] = folder / name
    return paths


def tile_2x2(image: Image.Image) -> Image.Image:
    tile = Image.new("RGB", (image.width * 2, image.height * 2))
    for x in (0, image.width):
        for y in (0, image.height):
            tile.paste(image, (x, y))
    return tile


def gradient(width: int = 640, height: int = 480) -> Image.Image:
    """A plain horizontal gradient: nothing a face detector should fire on."""
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.float32), (height, 1)).astype(np.uint8)
    return Image.fromarray(ramp).convert("RGB")


def cartoon_face(size: int = 320) -> Image.Image:
    """A smiley drawn with PIL (a yellow disc, two dots, an arc): a drawing of a face, not a face to classify."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    s = size / 320
    draw.ellipse((40 * s, 40 * s, 280 * s, 280 * s), fill=(250, 215, 40), outline="black", width=round(6 * s))
    for x in (115, 205):
        draw.ellipse(((x - 15) * s, 110 * s, (x + 15) * s, 150 * s), fill="black")
    draw.arc((95 * s, 140 * s, 225 * s, 240 * s), start=20, end=160, fill="black", width=round(8 * s))
    return image


def no_face_images() -> dict[str, Image.Image]:
    """Images with no face in them: a blank one, a cartoon-like drawing and a photo of a cat."""
    return {"blank": Image.new("RGB", (480, 360), (128, 128, 128)), "cartoon": cartoon_face(),
            "cat photo": Image.open(CAT).convert("RGB")}
