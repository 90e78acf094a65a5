"""Short clips made from examples/*.jpg on the fly: faces that move, one that enters and leaves.

`moving_faces_clip` writes the clip (PyAV: H.264 in MP4/MOV, VP8 in WebM, MJPEG in AVI) and returns, per frame,
where each face was pasted, so a test can check what the video analysis found against what is in the clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.helpers.paths import REPO

# (file, the face box the Haar cascade finds in it: x, y, w, h): pasted with a margin, scaled to the sprite size
FACES = {"astronaut": (REPO / "examples" / "astronaut.jpg", (175, 66, 98, 98)),
         "hopper": (REPO / "examples" / "grace_hopper.jpg", (143, 98, 236, 236))}
CODECS = {".mp4": ("libx264", "yuv420p"), ".mov": ("libx264", "yuv420p"), ".webm": ("libvpx", "yuv420p"),
          ".avi": ("mjpeg", "yuvj420p")}
BACKGROUND = (70, 90, 110)


@dataclass
class Clip:
    """What was written: the file, its rate and frame count, and each frame's pasted faces {name: (x, y, w, h)}."""

    path: Path
    fps: float
    size: tuple[int, int]
    frames: list[dict[str, tuple[int, int, int, int]]] = field(default_factory=list)


def face_sprite(name: str, side: int, margin: float = 0.5) -> Image.Image:
    """The named example's face with `margin` of its box on every side, as a side x side RGB image."""
    path, (x, y, w, h) = FACES[name]
    image = Image.open(path).convert("RGB")
    dx, dy = round(w * margin), round(h * margin)
    return image.crop((x - dx, y - dy, x + w + dx, y + h + dy)).resize((side, side), Image.Resampling.LANCZOS)


def moving_faces_clip(path: Path, size: tuple[int, int] = (320, 240), fps: float = 10, seconds: float = 2.0,
                      sprite: int = 120, enter_leave: tuple[float, float] = (0.6, 1.4)) -> Clip:
    """The astronaut drifting left to right for the whole clip; Grace Hopper present from enter_leave[0] s until
    enter_leave[1] s (on the right, drifting left). The container and codec follow path's suffix (CODECS)."""
    width, height = size
    sprites = {name: face_sprite(name, sprite) for name in FACES}
    count = round(seconds * fps)
    clip = Clip(path, fps, size)
    for index in range(count):
        t = index / fps
        at = {"astronaut": (round(8 + (width * 0.35 - 8) * t / seconds), (height - sprite) // 2)}
        if enter_leave[0] <= t < enter_leave[1]:
            at["hopper"] = (width - sprite - 6 - round(20 * (t - enter_leave[0])), max(0, (height - sprite) // 2 - 10))
        clip.frames.append({name: (x, y, sprite, sprite) for name, (x, y) in at.items()})
    write_video(path, [_frame(size, sprites, placed) for placed in clip.frames], fps)
    return clip


def _frame(size: tuple[int, int], sprites: dict[str, Image.Image], placed: dict) -> np.ndarray:
    canvas = Image.new("RGB", size, BACKGROUND)
    for name, (x, y, _, _) in placed.items():
        canvas.paste(sprites[name], (x, y))
    return np.asarray(canvas)


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """RGB frames -> a video file whose container and codec follow the suffix (CODECS), high quality."""
    codec, pix_fmt = CODECS[path.suffix]
    options = {"crf": "12"} if codec == "libx264" else {"qmin": "2", "qmax": "4"}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=round(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        if codec == "libvpx":
            stream.bit_rate = 4_000_000
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def hidden_face_clip(path: Path, size: tuple[int, int] = (320, 240), fps: float = 10, seconds: float = 3.0,
                     hidden: tuple[float, float] = (1.0, 1.8), speed: float = 45.0, sprite: int = 120) -> Clip:
    """The astronaut drifting right at `speed` px/s, covered (no face in the frame) from hidden[0] s until
    hidden[1] s: she comes back ~0.6 face widths from where she was last seen, her boxes no longer overlapping by
    IoU 0.3 (a bowed head, a hand over the face, a detector miss)."""
    height = size[1]
    sprites = {"astronaut": face_sprite("astronaut", sprite)}
    clip = Clip(path, fps, size)
    for index in range(round(seconds * fps)):
        t = index / fps
        at = (round(10 + speed * t), (height - sprite) // 2)
        clip.frames.append({} if hidden[0] <= t < hidden[1] else {"astronaut": (*at, sprite, sprite)})
    write_video(path, [_frame(size, sprites, placed) for placed in clip.frames], fps)
    return clip


def tilting_face_clip(path: Path, size: tuple[int, int] = (320, 240), fps: float = 10, seconds: float = 3.0,
                      tilt: float = 35.0, sprite: int = 140) -> Clip:
    """The astronaut's head tilting from upright to `tilt` degrees and back (one cycle), in the middle of the frame:
    the head movement (a nod to one side, a glance at a phone) that split one person into two faces under Haar."""
    width, height = size
    upright = face_sprite("astronaut", sprite)
    clip, frames = Clip(path, fps, size), []
    count = round(seconds * fps)
    for index in range(count):
        angle = tilt * (1 - abs(2 * index / (count - 1) - 1))  # 0 -> tilt -> 0
        turned = upright.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=BACKGROUND)
        placed = {"astronaut": ((width - sprite) // 2, (height - sprite) // 2, sprite, sprite)}
        clip.frames.append(placed)
        frames.append(_frame(size, {"astronaut": turned}, placed))
    write_video(path, frames, fps)
    return clip
