"""Hostile image files of issue 21, made in the test from PIL and bytes: a progressive JPEG that repeats its
scans (decoding time linear in their count), PNGs of extreme aspect ratio (small files, costly rows) and a video
whose frames grow past the header's size."""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction
from pathlib import Path

from PIL import Image


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a JPEG, a scan running to the next marker that is not a stuffed
    byte or a restart marker."""
    segments, position = [], 2  # after SOI
    while position < len(data) - 1:
        marker = data[position + 1]
        if marker == 0xD9:  # EOI
            segments.append((marker, position, position + 2))
            break
        end = position + 2 + struct.unpack(">H", data[position + 2:position + 4])[0]
        if marker == 0xDA:  # SOS: header, then entropy-coded data
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        segments.append((marker, position, end))
        position = end
    return segments


def progressive_scan_bomb(side: int = 2048, repeats: int = 300) -> bytes:
    """A valid progressive JPEG of a flat image (tiny scans) whose last scan is repeated `repeats` times: a few KB
    per thousand scans, each of which re-decodes the whole image."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (120, 90, 60)).save(buffer, format="JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    scans = [(start, end) for marker, start, end in jpeg_segments(data) if marker == 0xDA]
    start, end = scans[-1]
    return data[:end] + data[start:end] * repeats + data[end:]


def png_of_shape(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of width x height (all black): rows cost far more than their compressed bytes."""
    row = b"\0" + bytes((width + 7) // 8)
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)),
              (b"IDAT", zlib.compress(row * height, 9)), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(body)) + name + body
                                            + struct.pack(">I", zlib.crc32(name + body)) for name, body in chunks)


def growing_frames_avi(path: Path, small: tuple[int, int] = (320, 240), large: tuple[int, int] = (4096, 2304),
                       frames: tuple[int, int] = (3, 3)) -> Path:
    """An MJPEG AVI whose header (and first frames) say `small` and whose later frames are `large` JPEGs: each
    frame of MJPEG is a whole JPEG, so the size may change from one to the next. A few KB (flat frames)."""
    import av

    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = *small, "yuvj420p"
        for index, size in enumerate([small] * frames[0] + [large] * frames[1]):
            buffer = io.BytesIO()
            Image.new("RGB", size, (100, 120, 140)).save(buffer, format="JPEG", quality=80)
            packet = av.Packet(buffer.getvalue())
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, index, index, Fraction(1, 10)
            container.mux(packet)
    return path
