"""Reading a video safely (limits checked from the container before decoding) and writing one browsers play.

`probe_video` opens the container with PyAV (header and stream parameters only): it must be an MP4/MOV, WebM/MKV
or AVI container with a video stream (ffmpeg is told so before it reads a byte, `DEMUXER_OPTIONS`: no image, no
playlist whose entries would make it open other files, no network or other protocol), within
`VideoLimits` (file size, duration, frame size, frame rate). `VideoFrames` then decodes it with PyAV (phone clips
come upright: the rotation tag is applied), sampling at most `fps` frames per second, and checks the limits again
as it goes, each frame's own size before it is converted (a header can lie, and a stream can grow).
`AnnotatedVideo` writes H.264 in MP4 (libx264 bundled in PyAV's wheels, yuv420p, even sides, moov atom first) at
the sampled frames' own times.
Every refusal is a `VideoError` whose message says what was wrong, in user terms, without any path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

# ffmpeg demuxer names (as PyAV reports them) -> what users call them
CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2": "MP4/MOV", "matroska,webm": "WebM/MKV", "avi": "AVI"}
# ffmpeg options for both readers: only these demuxers, only local files (an HLS playlist or a concat list would
# make ffmpeg open the files it names: measured, a playlist of server paths was read before any format check)
DEMUXER_OPTIONS = {"format_whitelist": ",".join(CONTAINERS), "protocol_whitelist": "file"}

FORMATS_HINT = "use MP4, MOV, AVI or WebM"
ANNOTATED_MAX_SIDE = 1280  # the annotated copy of a 4K clip is 1280 px wide: enough to read the labels
ENCODER_OPTIONS = {"crf": "23", "preset": "veryfast"}  # libx264: good quality, fast on a CPU


@dataclass(frozen=True)
class VideoLimits:
    """What a video may be (checked before decoding, and again while reading)."""

    max_seconds: float = 600.0  # 10 minutes at 10 analysed frames/s is 6,000 frames: minutes of CPU
    max_bytes: int = 2 * 2**30  # 2 GB
    max_pixels: int = 3840 * 2160  # 4K UHD per frame
    max_fps: float = 240.0  # slow-motion phone clips; more is a broken or hostile header

    def __post_init__(self) -> None:
        if min(self.max_seconds, self.max_bytes, self.max_pixels, self.max_fps) <= 0:
            raise ValueError(f"every video limit must be positive; got {self}")


class VideoError(ValueError):
    """The input is not a video this project can analyse; the message says why, in user terms (no path)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says (before decoding): container, codec, frame size, rate, duration, frame count."""

    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float | None  # None when the container does not say
    frame_count: int | None
    size_bytes: int


DEFAULT_LIMITS = VideoLimits()


def probe_video(path: str | os.PathLike, limits: VideoLimits = DEFAULT_LIMITS) -> VideoInfo:
    """The container's description of `path`, or VideoError when it is not a usable video within `limits`."""
    import av

    size = _file_size(Path(path), limits)
    try:
        with av.open(str(path), metadata_errors="ignore", options=dict(DEMUXER_OPTIONS)) as container:
            if container.format.name not in CONTAINERS:
                raise VideoError(f"this is not a video file that can be read (it reads as: "
                                 f"{container.format.long_name}; {FORMATS_HINT})")
            if not container.streams.video:
                raise VideoError("the file has no video stream")
            stream = container.streams.video[0]
            info = VideoInfo(
                container=CONTAINERS[container.format.name], codec=stream.codec_context.name,
                width=stream.codec_context.width, height=stream.codec_context.height,
                fps=float(stream.average_rate or stream.guessed_rate or 0), duration_s=_duration(container, stream),
                frame_count=stream.frames or None, size_bytes=size)
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError):  # InvalidDataError and kin: ffmpeg made no sense of it
        raise VideoError(f"this is not a video file that can be read ({FORMATS_HINT}), or it is truncated or "
                         "corrupt") from None
    _check_limits(info, limits)
    return info


def _file_size(path: Path, limits: VideoLimits) -> int:
    if path.is_dir():
        raise VideoError("this is a folder, not a video file")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise VideoError("file not found") from None
    if size == 0:
        raise VideoError("the file is empty (0 bytes)")
    if size > limits.max_bytes:
        raise VideoError(f"the file is too large: {size / 2**20:,.0f} MB "
                         f"(the limit is {limits.max_bytes / 2**20:,.0f} MB)")
    if not os.access(path, os.R_OK):
        raise VideoError("the file cannot be read (permission denied)")
    return size


def _duration(container: object, stream: object) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:  # microseconds
        return container.duration / 1e6
    return None


def _check_limits(info: VideoInfo, limits: VideoLimits) -> None:
    if info.width <= 0 or info.height <= 0:
        raise VideoError("the video stream declares no frame size (the file is truncated or corrupt)")
    if info.width * info.height > limits.max_pixels:
        raise VideoError(f"the frames are too large: {info.width}x{info.height} pixels (the limit is "
                         f"{limits.max_pixels / 1e6:.1f} megapixels, 3840x2160)")
    if info.fps > limits.max_fps:
        raise VideoError(f"the frame rate is too high: {info.fps:,.0f} frames/s (the limit is {limits.max_fps:.0f})")
    if info.duration_s is not None and info.duration_s > limits.max_seconds:
        raise VideoError(too_long(info.duration_s, limits))


def too_long(seconds: float, limits: VideoLimits) -> str:
    return f"the video is too long: {seconds:,.1f} s (the limit is {limits.max_seconds:g} s)"


class VideoFrames:
    """The sampled frames of a probed video, decoded by PyAV: (frame index, time in s, RGB HxWx3 uint8).

    A frame is kept when its time is at least 1/fps after the previous kept one (so every frame of a clip
    slower than `fps`). `frames_read` counts every decoded frame. Reading stops at the first frame that cannot
    be decoded; the limits are checked again on the frames themselves: each decoded frame's own size before it
    is converted (a stream may grow mid-way: OpenCV rescaled such frames to the first one's size, +930 MB), and
    the time and count read so far. Phone clips come upright (the frame's rotation is applied).
    """

    def __init__(self, path: str | os.PathLike, info: VideoInfo, fps: float, limits: VideoLimits) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive; got {fps}")
        self.path, self.info, self.fps, self.limits = str(path), info, fps, limits
        self.frames_read = 0

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        import av

        next_time, interval = 0.0, 1.0 / self.fps
        try:
            with av.open(self.path, metadata_errors="ignore", options=dict(DEMUXER_OPTIONS)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                start = stream.start_time or 0
                for frame in container.decode(stream):
                    index, self.frames_read = self.frames_read, self.frames_read + 1
                    self._check_size(frame.width, frame.height)
                    time_s = self._time(frame, start, stream.time_base, index)
                    limits = self.limits
                    if time_s > limits.max_seconds or self.frames_read > limits.max_seconds * limits.max_fps:
                        raise VideoError(too_long(time_s, limits))
                    if time_s + 1e-6 < next_time:
                        continue
                    next_time = max(next_time + interval, time_s + interval / 2)
                    yield index, time_s, upright(frame.to_ndarray(format="rgb24"), frame.rotation)
        except av.error.FFmpegError:  # a frame that cannot be decoded ends the reading, as before
            if self.frames_read == 0:
                raise VideoError(f"the video cannot be decoded (its {self.info.codec} stream is not "
                                 "supported)") from None

    def _check_size(self, width: int, height: int) -> None:
        if width * height > self.limits.max_pixels:
            raise VideoError(f"the frames are too large: {width}x{height} pixels (the limit is "
                             f"{self.limits.max_pixels / 1e6:.1f} megapixels, 3840x2160)")

    def _time(self, frame: object, start: int, time_base: Fraction | None, index: int) -> float:
        """The frame's presentation time from the stream's start, else its index over the declared rate."""
        if frame.pts is not None and time_base:
            return max(0.0, float((frame.pts - start) * time_base))
        return index / self.info.fps if self.info.fps else 0.0


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as shown: PyAV's rotation is counter-clockwise degrees (the display matrix)."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class AnnotatedVideo:
    """H.264/MP4 writer for annotated frames: yuv420p, even sides, at most ANNOTATED_MAX_SIDE px, each frame at
    its own time (so a sampled copy lasts as long as the original). The file is complete once `close` returns.
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        import av

        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                                                options=dict(ENCODER_OPTIONS))
        self.stream.pix_fmt = "yuv420p"
        self.time_base = Fraction(1, 1000)
        self.stream.codec_context.time_base = self.time_base
        self.size: tuple[int, int] | None = None
        self.last_pts = -1

    def write(self, image: Image.Image, time_s: float) -> None:
        import av

        if self.size is None:
            self.size = encoded_size(image.size)
            self.stream.width, self.stream.height = self.size
        if image.size != self.size:
            image = image.resize(self.size, Image.Resampling.BILINEAR)
        frame = av.VideoFrame.from_image(image.convert("RGB"))
        frame.pts = self.last_pts = max(self.last_pts + 1, round(time_s * 1000))
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and finish the file (also after a failure: the caller deletes what it staged)."""
        try:
            if self.size is not None:
                self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()


def encoded_size(size: tuple[int, int], max_side: int = ANNOTATED_MAX_SIDE) -> tuple[int, int]:
    """(width, height) scaled to at most max_side, both even (yuv420p halves the colour planes), at least 2."""
    scale = min(1.0, max_side / max(size))
    return tuple(max(2, round(side * scale) // 2 * 2) for side in size)  # type: ignore[return-value]
