"""Emotions over a video, per face: `python -m fer_model video IN --out DIR` and the app's Video tab.

`analyze_video` probes the file (fer_model.video_io: container, size, duration and frame size checked before
decoding), decodes it with OpenCV sampling at most `fps` frames per second (default 10: every frame of a slower
clip), finds and classifies every face of a sampled frame in one batch (EmotionRecognizer.recognize), follows
each face from frame to frame by box overlap (fer_model.tracking: a face keeps its id, from 1, while in view or
hidden for at most `max_gap_s`; one that comes back later gets a new id), with `smooth` averages each face's
probabilities over its last SMOOTH_S seconds for the labels drawn and the timeline, and writes four files:

    emotions.csv    one line per face per analysed frame (fer_model.video_results.CSV_COLUMNS + 7 probabilities)
    summary.json    the video (duration, frames read and analysed, analysis frames/s) and, per face, the frames
                    it was seen in, its dominant emotion and the share of its frames per emotion
    timeline.png    per face, each emotion's probability over time (fer_model.timeline)
    annotated.mp4   the analysed frames with boxes, face ids and labels (draw_faces), H.264 that browsers play

The files are written into a staging folder next to DIR and moved into DIR only once all four are complete:
a refused or failed video leaves DIR as it was (VideoError says why; the CLI exits with code 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from .annotation import draw_faces
from .timeline import plot_timeline
from .tracking import MAX_GAP_S, FaceTracker
from .video_io import DEFAULT_LIMITS, AnnotatedVideo, VideoError, VideoFrames, VideoInfo, VideoLimits, probe_video
from .video_results import SMOOTH_S, FaceRow, ScoreSmoother, face_rows, shown_faces, summarize_faces, write_csv

DEFAULT_FPS = 10.0  # analysed frames per second: enough for expressions, which change over tenths of seconds
OUTPUT_FILES = ("emotions.csv", "summary.json", "timeline.png", "annotated.mp4")

__all__ = ["DEFAULT_FPS", "OUTPUT_FILES", "VideoError", "VideoLimits", "analyze_video"]

Progress = Callable[[int, int], None]  # (frames read so far, frames expected)


def analyze_video(
    path: str | os.PathLike, out_dir: str | os.PathLike, recognizer: Any, fps: float = DEFAULT_FPS,
    limits: VideoLimits = DEFAULT_LIMITS, progress: bool = False, time_limit_s: float | None = None,
    on_progress: Progress | None = None, smooth: bool = False, max_gap_s: float = MAX_GAP_S,
) -> dict[str, Any]:
    """Analyse the video at `path` with an EmotionRecognizer and write OUTPUT_FILES into `out_dir`; the summary.

    VideoError (nothing written) when the file is not a usable video within `limits`, has no decodable frame, or
    the analysis outlasts `time_limit_s`. `progress`: a progress bar on stderr; `on_progress`: a callback.
    `smooth`: labels and timeline from each face's probabilities averaged over SMOOTH_S s (the CSV keeps both);
    `max_gap_s`: how long a face may go unseen and keep its number when it comes back near where it was.
    """
    if not fps > 0 or max_gap_s < 0:
        raise ValueError(f"fps must be positive and max_gap_s >= 0; got {fps}, {max_gap_s}")
    started = time.monotonic()
    info = probe_video(path, limits)
    with staged_folder(out_dir) as staging:
        frames = VideoFrames(path, info, fps, limits)
        deadline = None if time_limit_s is None else started + time_limit_s
        window = max(1, round(SMOOTH_S * min(fps, info.fps or fps))) if smooth else 0
        tracking = (FaceTracker(max_gap_s=max_gap_s), ScoreSmoother(window) if smooth else None)
        rows, analysed, last_time_s = _analyse_frames(frames, recognizer, staging / "annotated.mp4", progress,
                                                      deadline, on_progress, tracking)
        duration_s = info.duration_s or last_time_s + 1 / (info.fps or fps)
        labels = recognizer.labels
        write_csv(rows, labels, staging / "emotions.csv")
        plot_timeline(rows, labels, duration_s, 1 / min(fps, info.fps or fps), staging / "timeline.png")
        summary = {
            "video": Path(path).name, "container": info.container, "codec": info.codec,
            "width": info.width, "height": info.height, "duration_s": round(duration_s, 3),
            "fps": round(info.fps, 3), "sample_fps": fps, "frames_read": frames.frames_read,
            "frames_analysed": analysed, "analysis_s": round(time.monotonic() - started, 3),
            "analysis_fps": round(analysed / max(time.monotonic() - started, 1e-9), 2),
            "runtime": runtime_name(recognizer), "labels": labels, "smooth_frames": window, "max_gap_s": max_gap_s,
            "faces": summarize_faces(rows, labels),
            "warnings": _warnings(info, frames, last_time_s),
        }
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _analyse_frames(frames: VideoFrames, recognizer: Any, video_path: Path, progress: bool, deadline: float | None,
                    on_progress: Progress | None, tracking: tuple[FaceTracker, ScoreSmoother | None],
                    ) -> tuple[list[FaceRow], int, float]:
    """Recognise, track (and smooth) and draw every sampled frame: (rows, frames analysed, time of the last one)."""
    from tqdm import tqdm

    (tracker, smoother), rows, analysed, time_s = tracking, [], 0, 0.0
    expected = expected_frames(frames.info)
    writer = AnnotatedVideo(video_path, min(frames.fps, frames.info.fps or frames.fps))
    bar = tqdm(total=expected, unit="frame", desc="video", file=sys.stderr, disable=not progress)
    try:
        for index, time_s, rgb in frames:
            if deadline is not None and time.monotonic() > deadline:
                raise VideoError(f"the analysis was stopped at {time_s:.1f} s of video: it took longer than its "
                                 "time limit (try a shorter clip)")
            result = recognizer.recognize(rgb)
            faces = result["faces"] if result["face_found"] else []  # no face: nothing to follow in this frame
            ids = tracker.update([tuple(face["box"]) for face in faces], time_s)
            frame_rows = face_rows(index, time_s, faces, ids, smoother)
            rows += frame_rows
            writer.write(draw_faces(Image.fromarray(rgb), shown_faces(frame_rows), recognizer.labels, ids), time_s)
            analysed += 1
            _report(bar, on_progress, frames.frames_read, expected)
        _report(bar, on_progress, frames.frames_read, expected)  # the frames read after the last sampled one
    finally:
        writer.close()
        bar.close()
    if analysed == 0:
        raise VideoError("no frame could be decoded (the file is truncated or corrupt)")
    return rows, analysed, time_s


def _report(bar: Any, on_progress: Progress | None, frames_read: int, expected: int) -> None:
    bar.update(frames_read - bar.n)
    if on_progress is not None:
        on_progress(frames_read, expected)


def runtime_name(recognizer: Any) -> str:
    """What classified the faces: "onnxruntime (model_int8.onnx)" or "pytorch"."""
    return f"onnxruntime ({recognizer.onnx_file.name})" if recognizer.onnx_file else "pytorch"


def expected_frames(info: VideoInfo) -> int:
    """Frames the container declares (or its duration times its rate); 0 when it says neither."""
    if info.frame_count:
        return info.frame_count
    return round((info.duration_s or 0) * info.fps)


def _warnings(info: VideoInfo, frames: VideoFrames, last_time_s: float) -> list[str]:
    """Said in the summary (and by the CLI) rather than silently: a video that ended before its declared end."""
    declared = expected_frames(info)
    if declared and frames.frames_read < 0.98 * declared - 1:
        return [(f"only {frames.frames_read} of the {declared} frames the file declares could be decoded "
                 f"(it ends at {last_time_s:.1f} s: truncated or corrupt)")]
    return []


@contextlib.contextmanager
def staged_folder(out_dir: str | os.PathLike) -> Iterator[Path]:
    """A fresh folder next to `out_dir` to write into; on success its files replace those of `out_dir` (created
    by renaming the folder when absent), on any failure it is deleted and `out_dir` is left as it was."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} exists and is not a folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        yield staging
        if out_dir.is_dir():
            for name in sorted(os.listdir(staging)):
                os.replace(staging / name, out_dir / name)
        else:
            staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
