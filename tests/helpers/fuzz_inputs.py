"""Hypothesis strategies and helpers shared by the fuzz tests (image loader, recognizer, app).

`damaged_files()` draws a real image file (JPEG/PNG/GIF/WebP/BMP/TIFF of a random size and mode, written by
PIL) and then leaves it intact, truncates it, flips random bytes or splices random bytes into it;
`random_bytes()` draws arbitrary bytes, half of them behind a real format's magic number so the decoders
get past their first check. `bomb_headers()` are tiny files declaring huge images. The counters record
how many inputs each target was fed: tests/artifacts/fuzz_counts.json holds the totals of the last run.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st
from PIL import Image

from tests.helpers.image_files import ASTRONAUT, png_declaring
from tests.helpers.paths import ARTIFACTS

COUNTS_FILE = ARTIFACTS / "fuzz_counts.json"
FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"]
MODES = ["L", "RGB", "RGBA", "P", "CMYK", "I;16", "1", "LA"]
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"GIF87a", b"BM", b"II*\x00", b"MM\x00*",
         b"RIFF\x00\x01\x00\x00WEBPVP8 ", b"RIFF\x00\x01\x00\x00WEBPVP8L", b"%!PS-Adobe-3.0 EPSF-3.0", b"8BPS"]
PER_CALL_LIMIT_S = 2.0  # the bound for one call on any input
COUNTS: Counter[str] = Counter()


def record_counts() -> dict[str, int]:
    """Merge this process's counters into the counts file (other fuzz modules add their own keys)."""
    COUNTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    totals = json.loads(COUNTS_FILE.read_text()) if COUNTS_FILE.is_file() else {}
    totals.update(COUNTS)
    COUNTS_FILE.write_text(json.dumps(dict(sorted(totals.items())), indent=2) + "\n")
    return totals


def make_image(mode: str, size: tuple[int, int], seed: int, content: str = "noise") -> Image.Image:
    """A PIL image of the given mode and size: random noise, a flat colour or the astronaut photo."""
    width, height = size
    if content == "astronaut":
        rgb = Image.open(ASTRONAUT).convert("RGB").resize(size)
    elif content == "flat":
        rgb = Image.new("RGB", size, tuple(int(v) for v in np.random.default_rng(seed).integers(0, 256, 3)))
    else:
        rgb = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))
    if mode == "I;16":
        return Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    if mode in ("RGBA", "LA"):
        image = rgb.convert(mode)
        alpha = np.random.default_rng(seed + 1).integers(0, 256, (height, width), dtype=np.uint8)
        image.putalpha(Image.fromarray(alpha))
        return image
    return rgb.convert(mode)


def encode(image: Image.Image, fmt: str) -> bytes:
    """The image written by PIL in `fmt`; modes the format cannot store are converted the way a user's tool would."""
    for candidate in (image, image.convert("RGBA" if "A" in image.mode else "RGB"), image.convert("RGB")):
        buffer = io.BytesIO()
        try:
            candidate.save(buffer, format=fmt)
            return buffer.getvalue()
        except (OSError, ValueError, KeyError):
            continue
    raise AssertionError(f"PIL cannot write {image.mode} as {fmt}")


@dataclass
class FuzzFile:
    fmt: str
    mode: str
    size: tuple[int, int]
    damage: str
    data: bytes

    def __repr__(self) -> str:  # hypothesis prints this for a failing example: keep it short
        return f"FuzzFile({self.fmt} {self.mode} {self.size[0]}x{self.size[1]} {self.damage}, {len(self.data)} bytes)"


@st.composite
def damaged_files(draw: st.DrawFn, max_side: int = 600) -> FuzzFile:
    fmt = draw(st.sampled_from(FORMATS))
    mode = draw(st.sampled_from(MODES))
    size = (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    content = draw(st.sampled_from(["noise", "flat", "astronaut"]))
    data = bytearray(encode(make_image(mode, size, draw(st.integers(0, 2**31)), content), fmt))
    damage = draw(st.sampled_from(["intact", "truncated", "flipped", "truncated+flipped", "spliced"]))
    if "truncated" in damage:
        del data[draw(st.integers(0, len(data) - 1)) :]
    if "flipped" in damage and data:
        for position, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
                                             min_size=1, max_size=16)):
            data[position] = value
    if damage == "spliced":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    return FuzzFile(fmt, mode, size, damage, bytes(data))


def random_bytes() -> st.SearchStrategy[bytes]:
    plain = st.binary(max_size=4096)
    behind_magic = st.builds(lambda magic, tail: magic + tail, st.sampled_from(MAGIC), st.binary(max_size=4096))
    return st.one_of(plain, behind_magic)


# ------------------------------------------------------------------ decompression bombs (headers only)

def gif_declaring(width: int, height: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"
    frame = b"," + struct.pack("<HHHH", 0, 0, width, height) + b"\x00" + b"\x08\x02\x4c\x01\x00"
    return screen + frame + b";"


def bmp_declaring(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    pixels = b"\0" * 64
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info)) + info + pixels


def tiff_declaring(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *entry) for entry in entries) + b"\0" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\0" * 16


def jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("L", (16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """WebP sides are at most 16383 px (14 bits), so its bomb is 16383x16383 = 268 MP."""
    buffer = io.BytesIO()
    Image.new("L", (16, 16)).save(buffer, format="WEBP", lossless=True)
    data = bytearray(buffer.getvalue())
    signature = data.index(b"VP8L") + 8
    bits = struct.unpack("<I", data[signature + 1 : signature + 5])[0]
    bits = (bits & ~((1 << 28) - 1)) | (min(width, 16383) - 1) | ((min(height, 16383) - 1) << 14)
    data[signature + 1 : signature + 5] = struct.pack("<I", bits)
    return bytes(data)


BOMB_WRITERS = {"png": png_declaring, "gif": gif_declaring, "bmp": bmp_declaring, "tiff": tiff_declaring,
                "jpeg": jpeg_declaring, "webp": webp_declaring}


def real_png_bomb(side: int = 10_000) -> bytes:
    """A complete, valid PNG of side x side black pixels: ~100 KB on disk, side^2 bytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + one grey byte per pixel
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (ru_maxrss, KB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def assert_user_readable(message: str, *forbidden: str | os.PathLike) -> None:
    """A message fit for a user: non-empty, no stack trace, no server path, none of the given strings."""
    assert message and message.strip(), "empty error message"
    assert "Traceback" not in message and 'File "' not in message, message
    assert "/tmp/" not in message and "/work/" not in message, message
    if len(str(Path.home())) > 1:
        assert str(Path.home()) not in message, message
    for text in forbidden:
        assert str(text) not in message, message


def check_schema(result: dict, labels: list[str], size: tuple[int, int]) -> None:
    assert set(result) - {"whole_image"} == {"face_found", "faces"} and isinstance(result["face_found"], bool)
    if result.get("whole_image"):  # asked for: the whole image as one entry
        assert not result["face_found"] and len(result["faces"]) == 1
        assert result["faces"][0]["box"] == [0, 0, size[0], size[1]]
    else:
        assert bool(result["faces"]) == result["face_found"], "no face found: no entry, no emotion"
    for face in result["faces"]:
        x, y, w, h = face["box"]
        assert all(isinstance(v, int) for v in face["box"]), face["box"]
        assert x >= 0 and y >= 0 and w >= 1 and h >= 1 and x + w <= size[0] and y + h <= size[1], (face["box"], size)
        assert face["label"] in labels and list(face["scores"]) == labels
        assert face["score"] == face["scores"][face["label"]] == max(face["scores"].values())
        assert all(0.0 <= p <= 1.0 for p in face["scores"].values())
        assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-4)
