"""`python -m fer_model video IN --out DIR`: emotions over a clip made here from examples/*.jpg, and refusals.

The clip (tests/helpers/video_clips.py) has the astronaut drifting right for 2 s and Grace Hopper in view from
0.6 s to 1.4 s; the analysis must find each where she was pasted, in every frame, under one face id each.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fer_model.__main__ import main
from fer_model.annotation import PALETTE, label_colours
from fer_model.video import OUTPUT_FILES, VideoError, VideoLimits, analyze_video
from fer_model.video_io import VideoFrames, VideoInfo, probe_video
from fer_model.video_results import CSV_COLUMNS
from tests.helpers.image_files import ASTRONAUT
from tests.helpers.paths import RELEASED_MODEL_DIR, REPO, needs_released_model
from tests.helpers.video_clips import Clip, moving_faces_clip, write_video

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]  # the test model's id2label


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return moving_faces_clip(tmp_path_factory.mktemp("clip") / "faces.mp4")


@pytest.fixture(scope="module")
def analysed(clip: Clip, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One CLI run on the clip, shared by the checks of its four files."""
    out = tmp_path_factory.mktemp("run") / "result"
    assert main(["video", str(clip.path), "--out", str(out), "--model", str(tiny_model_dir)]) == 0
    return {"out": out, "rows": list(csv.DictReader((out / "emotions.csv").open())),
            "summary": json.loads((out / "summary.json").read_text())}


def pasted_face(clip: Clip, row: dict) -> str:
    """Which example face a CSV row's box lies on (its centre inside the pasted picture)."""
    cx, cy = int(row["x"]) + int(row["width"]) / 2, int(row["y"]) + int(row["height"]) / 2
    (name,) = [name for name, (x, y, w, h) in clip.frames[int(row["frame"])].items()
               if x <= cx < x + w and y <= cy < y + h]
    return name


def test_each_face_keeps_one_id_and_every_frame_has_its_rows(clip: Clip, analysed: dict) -> None:
    rows = analysed["rows"]
    assert list(rows[0]) == [*CSV_COLUMNS, *LABELS]
    found = sorted((int(row["frame"]), pasted_face(clip, row)) for row in rows)
    assert found == sorted((frame, name) for frame, faces in enumerate(clip.frames) for name in faces)
    ids = {name: {row["face_id"] for row in rows if pasted_face(clip, row) == name} for name in ("astronaut", "hopper")}
    assert ids == {"astronaut": {"1"}, "hopper": {"2"}}  # ids in order of appearance, one per face
    hopper_times = [float(row["time_s"]) for row in rows if row["face_id"] == "2"]
    assert (min(hopper_times), max(hopper_times)) == (0.6, 1.3)  # entered at 0.6 s, gone from 1.4 s
    for row in rows:
        scores = [float(row[label]) for label in LABELS]
        assert sum(scores) == pytest.approx(1, abs=1e-4) and row["label"] == LABELS[int(np.argmax(scores))]


def test_summary_counts_frames_and_faces(clip: Clip, analysed: dict) -> None:
    summary = analysed["summary"]
    assert summary["video"] == "faces.mp4" and summary["codec"] == "h264" and summary["duration_s"] == 2.0
    assert summary["frames_read"] == summary["frames_analysed"] == len(clip.frames) == 20
    assert summary["analysis_fps"] > 0 and summary["warnings"] == [] and summary["runtime"] == "pytorch"
    faces = summary["faces"]
    assert [(f["face_id"], f["frames_seen"], f["first_seen_s"], f["last_seen_s"]) for f in faces] == \
        [(1, 20, 0.0, 1.9), (2, 8, 0.6, 1.3)]
    rows = analysed["rows"]
    for face in faces:
        labels = [row["label"] for row in rows if row["face_id"] == str(face["face_id"])]
        assert face["share"] == {label: round(labels.count(label) / len(labels), 4) for label in LABELS}
        means = {label: np.mean([float(row[label]) for row in rows if row["face_id"] == str(face["face_id"])])
                 for label in LABELS}  # dominant: the highest mean probability
        assert face["dominant_emotion"] == face["dominant_emotions"][0] == max(LABELS, key=means.get)


def test_timeline_png_has_a_panel_per_face_in_the_emotion_colours(analysed: dict) -> None:
    image = Image.open(analysed["out"] / "timeline.png")
    assert image.format == "PNG" and image.size == (1000, 500)  # 10 in wide; 1 in + 2 in per face, at 100 dpi
    pixels = {tuple(p) for p in np.asarray(image.convert("RGB")).reshape(-1, 3)}
    assert all(tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) in pixels for c in label_colours(LABELS).values())


def test_annotated_video_is_browser_playable_h264_with_coloured_labels(clip: Clip, analysed: dict) -> None:
    with av.open(str(analysed["out"] / "annotated.mp4")) as container:
        stream = container.streams.video[0]
        assert container.format.name.startswith("mov,mp4") and stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p" and (stream.width, stream.height) == clip.size
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == stream.frames == 20
    palette = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in PALETTE[: len(LABELS)]])
    for row in analysed["rows"]:  # the label tag above each box is filled with its emotion's colour
        x, y = int(row["x"]), int(row["y"])
        tag = np.median(frames[int(row["frame"])][y - 10 : y - 4, x + 2 : x + 30].reshape(-1, 3), axis=0)
        assert LABELS[int(np.abs(palette - tag).max(axis=1).argmin())] == row["label"], (row, tag)


def test_no_staging_folder_is_left_next_to_the_output(analysed: dict) -> None:
    assert sorted(p.name for p in analysed["out"].parent.iterdir()) == ["result"]
    assert sorted(os.listdir(analysed["out"])) == sorted(OUTPUT_FILES)


@pytest.mark.parametrize("suffix", [".webm", ".avi", ".mov"])
def test_other_containers_are_read(suffix: str, tiny_model_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    clip = moving_faces_clip(tmp_path / f"clip{suffix}", seconds=0.5, enter_leave=(9, 9))
    assert main(["video", str(clip.path), "--out", str(tmp_path / "out"), "--model", str(tiny_model_dir),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames_analysed"] == 5 and [f["frames_seen"] for f in summary["faces"]] == [5]


def test_frames_are_sampled_at_most_fps_per_second(tiny_model_dir: Path, tmp_path: Path) -> None:
    """25 frames/s for 1.2 s, analysed at 5 per second: 30 frames read, 6 analysed, 0.2 s apart (+- a frame)."""
    still = np.asarray(Image.open(ASTRONAUT).convert("RGB").resize((256, 256)))
    path = write_video(tmp_path / "still.mp4", [still] * 30, fps=25)
    from fer_model import EmotionRecognizer

    summary = analyze_video(path, tmp_path / "out", EmotionRecognizer.from_pretrained(tiny_model_dir), fps=5)
    assert (summary["frames_read"], summary["frames_analysed"], summary["sample_fps"]) == (30, 6, 5)
    times = [float(row["time_s"]) for row in csv.DictReader((tmp_path / "out" / "emotions.csv").open())]
    assert len(times) == 6 and all(0.16 <= b - a <= 0.24 for a, b in itertools.pairwise(times))
    with av.open(str(tmp_path / "out" / "annotated.mp4")) as container:
        assert [round(float(frame.time), 2) for frame in container.decode(video=0)] == times  # at their own times


def bad_videos(folder: Path, clip: Clip) -> dict[str, tuple[Path, str]]:
    """Inputs that must be refused: path -> the phrase the error must contain."""
    data = clip.path.read_bytes()
    files = {"empty.mp4": b"", "text.mp4": b"hello, not a video\n" * 50, "photo.mp4": ASTRONAUT.read_bytes(),
             "truncated.mp4": data[: len(data) // 2],  # PyAV writes the index (moov) last: cut, nothing is left
             "corrupt.mp4": data[:48] + bytes(len(data) - 48),
             "playlist.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{clip.path}\n#EXT-X-ENDLIST\n".encode()}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    phrases = {"empty.mp4": "the file is empty", "text.mp4": "not a video file", "photo.mp4": "not a video file",
               "truncated.mp4": "truncated or corrupt", "corrupt.mp4": "not a video file",
               "playlist.m3u8": "not a video file"}
    cases = {name: (folder / name, phrase) for name, phrase in phrases.items()}
    return {**cases, "missing.mp4": (folder / "missing.mp4", "file not found"),
            "folder": (folder, "this is a folder")}


@pytest.mark.parametrize("name", ["empty.mp4", "text.mp4", "photo.mp4", "truncated.mp4", "corrupt.mp4",
                                  "playlist.m3u8", "missing.mp4", "folder"])
def test_bad_files_exit_2_naming_the_file_and_leave_the_output_as_it_was(
        name: str, clip: Clip, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path, phrase = bad_videos(inputs, clip)[name]
    out = tmp_path / "out"
    out.mkdir()
    (out / "emotions.csv").write_text("an earlier run's file\n")
    assert main(["video", str(path), "--out", str(out), "--model", str(tiny_model_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {path}: ") and phrase in captured.err, captured.err
    assert os.listdir(out) == ["emotions.csv"] and (out / "emotions.csv").read_text() == "an earlier run's file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "out"]  # no staging folder left


def test_frames_that_cannot_be_decoded_are_refused_and_nothing_is_written(clip: Clip, tiny_model_dir: Path,
                                                                          tmp_path: Path) -> None:
    """A container that probes fine but whose frames are garbage: no decodable frame, DIR never created."""
    data = bytearray(clip.path.read_bytes())
    start = data.index(b"mdat") + 4
    data[start : start + 20_000] = bytes(len(data[start : start + 20_000]))
    (tmp_path / "zeroed.mp4").write_bytes(bytes(data))
    probe_video(tmp_path / "zeroed.mp4")  # the container is fine
    assert main(["video", str(tmp_path / "zeroed.mp4"), "--out", str(tmp_path / "out"),
                 "--model", str(tiny_model_dir)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zeroed.mp4"]


@pytest.mark.parametrize("limits, phrase", [
    (VideoLimits(max_seconds=1.5), "the video is too long: 2.0 s (the limit is 1.5 s)"),
    (VideoLimits(max_bytes=10_000), "the file is too large"),
    (VideoLimits(max_pixels=300 * 200), "the frames are too large: 320x240 pixels"),
    (VideoLimits(max_fps=5), "the frame rate is too high: 10 frames/s"),
])
def test_videos_over_the_limits_are_refused_before_decoding(clip: Clip, limits: VideoLimits, phrase: str) -> None:
    with pytest.raises(VideoError, match=re.escape(phrase)):
        probe_video(clip.path, limits)


def test_max_seconds_option_and_time_limit(clip: Clip, tiny_model_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["video", str(clip.path), "--out", str(tmp_path / "out"), "--max_seconds", "1",
                 "--model", str(tiny_model_dir)]) == 2
    assert "too long: 2.0 s (the limit is 1 s)" in capsys.readouterr().err
    from fer_model import EmotionRecognizer

    with pytest.raises(VideoError, match="time limit"):
        analyze_video(clip.path, tmp_path / "out", EmotionRecognizer.from_pretrained(tiny_model_dir), time_limit_s=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_new_run_replaces_the_four_files_and_keeps_the_others(clip: Clip, tiny_model_dir: Path,
                                                                tmp_path: Path) -> None:
    from fer_model import EmotionRecognizer

    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "summary.json").write_text("{}")
    short = moving_faces_clip(tmp_path / "short.mp4", seconds=0.3, enter_leave=(9, 9))
    analyze_video(short.path, out, EmotionRecognizer.from_pretrained(tiny_model_dir))
    assert sorted(os.listdir(out)) == sorted([*OUTPUT_FILES, "notes.txt"]) and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "summary.json").read_text())["frames_analysed"] == 3


@needs_released_model
def test_released_model_sees_the_smiling_astronaut_with_int8_by_default_and_pytorch(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clip = moving_faces_clip(tmp_path / "astronaut.mp4", seconds=0.4, enter_leave=(9, 9))
    summaries = {}
    for flags in ([], ["--no-onnx"]):
        assert main(["video", str(clip.path), "--out", str(tmp_path / "out"), "--model", str(RELEASED_MODEL_DIR),
                     "--json", *flags]) == 0
        summaries[" ".join(flags)] = json.loads(capsys.readouterr().out)
    assert [s["runtime"] for s in summaries.values()] == ["onnxruntime (model_int8.onnx)", "pytorch"]
    assert all([f["dominant_emotion"] for f in s["faces"]] == ["happy"] for s in summaries.values())


def test_module_entry_point_prints_a_progress_bar(clip: Clip, tiny_model_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "fer_model", "video", str(clip.path), "--out", str(tmp_path / "o"),
                           "--fps", "2", "--model", str(tiny_model_dir), "--json"], cwd=REPO, capture_output=True,
                          text=True,
                          check=False, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frames_analysed"] == 4
    assert re.search(r"video: 100%.* 20/20 \[", done.stderr), done.stderr  # tqdm's bar: frames read of 20


@pytest.mark.parametrize("reader", ["probe (PyAV)", "frames (OpenCV)"])
def test_a_playlist_never_makes_ffmpeg_open_the_files_it_names(reader: str, tmp_path: Path) -> None:
    """An HLS playlist naming a server file: ffmpeg's hls demuxer would open it (here a FIFO, on which it would
    block) before any format check of ours. Both readers tell ffmpeg the allowed demuxers and protocols first."""
    fifo = tmp_path / "secret.mp4"
    os.mkfifo(fifo)
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{fifo}\n#EXT-X-ENDLIST\n")
    info = VideoInfo("MP4/MOV", "h264", 64, 64, 10.0, 1.0, 10, 100)
    read = (lambda: probe_video(playlist)) if reader.startswith("probe") else (lambda: list(VideoFrames(
        playlist, info, 10, VideoLimits())))
    errors: list[Exception] = []
    worker = threading.Thread(target=lambda: errors.append(pytest.raises(VideoError, read).value), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # ffmpeg opened the FIFO and waits for data: let it go, then fail
        os.close(os.open(fifo, os.O_WRONLY))
        worker.join(10)
        pytest.fail(f"{reader}: ffmpeg opened the file the playlist names")
    assert errors and ("not a video file" in str(errors[0]) or "cannot be decoded" in str(errors[0])), errors
