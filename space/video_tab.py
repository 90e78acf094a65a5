"""The Video tab and the `predict_video` API: a clip in; the annotated video, the emotion timeline, the faces and
the CSV out (fer_model.video does the work).

Guards: the input is a file gradio received for this request, at most 50 MB (space.uploads.UploadedVideo); the
container is probed before any frame is decoded and refused over VIDEO_LIMITS (60 s); the analysis stops after
VIDEO_TIME_LIMIT_S; one video at a time, in its own queue group, so photo and API requests keep their slots.
Each run writes into its own folder under a per-process results root, of which the last RUNS_KEPT are kept
(gradio copies the outputs into its cache, which the server sweeps).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from fer_model import EmotionRecognizer
from fer_model.video import DEFAULT_FPS, VideoError, VideoLimits, analyze_video
from fer_model.video_results import FACES_TABLE_HEADERS, faces_table
from space.uploads import MAX_VIDEO_SIZE, UploadedVideo

VIDEO_LIMITS = VideoLimits(max_seconds=60, max_bytes=MAX_VIDEO_SIZE)
VIDEO_TIME_LIMIT_S = 240.0  # a 60 s clip at 10 frames/s takes about a minute on a 2-core CPU Space
RUNS_KEPT = 2  # result folders kept on disk (the newest); one video runs at a time
VIDEO_EVENTS = dict(concurrency_limit=1, concurrency_id="video")
_RESULTS: list[Path] = []  # the results root, made on first use


def results_folder() -> Path:
    """A new folder for one run, under this process's results root; older runs beyond RUNS_KEPT are deleted."""
    if not _RESULTS:
        _RESULTS.append(Path(tempfile.mkdtemp(prefix="fer-video-results-")))
    root = _RESULTS[0]
    runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[: max(0, len(runs) - RUNS_KEPT + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return root / uuid.uuid4().hex


def run_analysis(recognizer: EmotionRecognizer, video: str,
                 on_progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, Any], Path]:
    """analyze_video within the Space's limits: (summary, folder of the four files), or gr.Error saying why not.
    An unexpected failure reaches the user as a plain message, its traceback only the server log."""
    out = results_folder()
    try:
        summary = analyze_video(video, out, recognizer, limits=VIDEO_LIMITS, time_limit_s=VIDEO_TIME_LIMIT_S,
                                on_progress=on_progress, smooth=True)
    except VideoError as error:
        raise gr.Error(f"Cannot use this video: {error}.", title="Unusable video", print_exception=False) from None
    except Exception as error:
        raise gr.Error("Could not analyse this video: an internal error occurred (it is logged on the server). "
                       "Try another clip.", title="Analysis failed") from error
    return summary, out


def video_status(summary: dict[str, Any]) -> str:
    count = len(summary["faces"])
    faces = f"**{count} face{'s' if count != 1 else ''} followed**" if count else "**No face found**"
    return (f"{faces} over {summary['frames_analysed']} analysed frames ({summary['frames_read']} read, "
            f"{summary['duration_s']:.1f} s of video) at {summary['analysis_fps']:.1f} frames/s.")


def build_video_tab(recognizer: EmotionRecognizer) -> None:
    """The tab's components and events, inside the caller's `with gr.Tab(...)`; and the predict_video API."""

    def analyze_clip(video: str | None, progress: gr.Progress = gr.Progress()) -> tuple:
        if video is None:  # the input was cleared
            return None, None, None, None, None, None, ""

        def report(done: int, total: int | None) -> None:
            progress((done, total or None), desc="Analysing", unit="frames")

        summary, out = run_analysis(recognizer, video, report)
        return (str(out / "annotated.mp4"), str(out / "timeline.png"), faces_table(summary["faces"]), summary,
                str(out / "emotions.csv"), str(out / "summary.json"), video_status(summary))

    def predict_video(video: str) -> tuple[dict, str, str, str]:
        """Faces and their emotions over a video: send a local file, handle_file("clip.mp4") (MP4, MOV, AVI or
        WebM; at most 60 s and 50 MB); URLs and server paths are not read.

        Args:
            video: the clip, as a file sent by the client (handle_file).
        Returns:
            summary: as summary.json: per face its frames seen, dominant emotion and share of each emotion; the
            video's duration and frames read and analysed.
            csv: emotions.csv, one row per face per analysed frame.
            annotated video: annotated.mp4 (H.264), each face boxed and labelled with its number.
            timeline: timeline.png, each face's emotion over time.
        """
        summary, out = run_analysis(recognizer, video)
        return summary, str(out / "emotions.csv"), str(out / "annotated.mp4"), str(out / "timeline.png")

    gr.Markdown(f"Upload a clip: MP4, MOV, AVI or WebM, **at most {VIDEO_LIMITS.max_seconds:g} s and "
                f"{MAX_VIDEO_SIZE >> 20} MB**. Up to {DEFAULT_FPS:g} frames per second are analysed; each face is "
                "followed from frame to frame and keeps its number while in view or hidden for up to 1 s (a face that "
                "comes back later gets a new one); labels and timeline use each face's probabilities averaged over "
                "0.5 s. One video is analysed at a time.")
    with gr.Row():
        video = UploadedVideo(label="Video", sources=["upload"], elem_id="video")
        annotated = gr.Video(label="Faces over time", interactive=False, elem_id="video-annotated")
    message = gr.Markdown(elem_id="video-status")
    timeline = gr.Image(label="Emotion timeline", type="filepath", interactive=False, elem_id="video-timeline")
    faces = gr.Dataframe(headers=FACES_TABLE_HEADERS, label="Faces", interactive=False, elem_id="video-faces")
    with gr.Row():
        csv_file = gr.File(label="emotions.csv (one row per face per analysed frame)", elem_id="video-csv")
        summary_file = gr.File(label="summary.json", elem_id="video-summary-file")
    summary = gr.JSON(label="summary.json", elem_id="video-summary")
    api_video = UploadedVideo(label="video", visible=False)
    api_outputs = [gr.JSON(label="summary", visible=False), gr.File(label="csv", visible=False),
                   gr.File(label="annotated video", visible=False), gr.File(label="timeline", visible=False)]

    video.upload(analyze_clip, video, [annotated, timeline, faces, summary, csv_file, summary_file, message],
                 api_visibility="private", **VIDEO_EVENTS)
    gr.on([], predict_video, api_video, api_outputs, api_name="predict_video", **VIDEO_EVENTS)
