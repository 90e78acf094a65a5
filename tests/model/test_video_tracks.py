"""Video tracks that keep a person: a face hidden for 0.8 s that comes back near where it was keeps its number;
--smooth (labels and timeline from averaged probabilities, the CSV keeping both); dominant emotions by mean
probability with near ties named; summary.json among the Video tab's downloads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fer_model.__main__ import main
from fer_model.video_results import CSV_COLUMNS, FaceRow, ScoreSmoother, dominant_text, face_summary, faces_table
from fer_model.retina import missing_reason
from tests.helpers.video_clips import Clip, hidden_face_clip, tilting_face_clip

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]  # the test model's id2label


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return hidden_face_clip(tmp_path_factory.mktemp("clip") / "hidden.mp4")


def run(clip: Clip, model: Path, out: Path, *options: str) -> tuple[list[dict], dict]:
    assert main(["video", str(clip.path), "--out", str(out), "--model", str(model), *options]) == 0
    return list(csv.DictReader((out / "emotions.csv").open())), json.loads((out / "summary.json").read_text())


def test_a_face_hidden_for_a_few_frames_keeps_one_track(clip: Clip, tiny_model_dir: Path, tmp_path: Path) -> None:
    shown = [index for index, faces in enumerate(clip.frames) if faces]
    assert len(shown) == 22 and len(clip.frames) == 30  # 8 frames (0.8 s) without the face
    rows, summary = run(clip, tiny_model_dir, tmp_path / "kept")
    assert sorted(int(row["frame"]) for row in rows) == shown  # the face found in every frame it is in
    assert {row["face_id"] for row in rows} == {"1"}  # ... and one number throughout
    assert [(f["face_id"], f["frames_seen"]) for f in summary["faces"]] == [(1, 22)] and summary["max_gap_s"] == 1.0
    rows, summary = run(clip, tiny_model_dir, tmp_path / "split", "--max_gap_s", "0.5")  # the flag: gap too short
    assert [(f["face_id"], f["frames_seen"]) for f in summary["faces"]] == [(1, 10), (2, 12)]


@pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))
def test_a_tilting_head_stays_one_face_with_the_default_detector(tiny_model_dir: Path, tmp_path: Path) -> None:
    tilting = tilting_face_clip(tmp_path / "tilt.mp4")  # upright -> 35 degrees -> upright over 3 s
    rows, summary = run(tilting, tiny_model_dir, tmp_path / "default")
    assert [(f["face_id"], f["frames_seen"]) for f in summary["faces"]] == [(1, 30)]  # every frame, one number
    rows, summary = run(tilting, tiny_model_dir, tmp_path / "haar", "--detector", "haar")
    assert sum(f["frames_seen"] for f in summary["faces"]) < 25  # Haar loses the tilted head (9 + 8 frames here)


def test_smooth_keeps_raw_and_smoothed_scores(clip: Clip, tiny_model_dir: Path, tmp_path: Path) -> None:
    rows, summary = run(clip, tiny_model_dir, tmp_path / "smooth", "--smooth")
    assert list(rows[0]) == [*CSV_COLUMNS, *LABELS, "smoothed_label", *(f"smoothed_{label}" for label in LABELS)]
    assert summary["smooth_frames"] == 5  # 0.5 s at 10 frames/s
    raw = [[float(row[label]) for label in LABELS] for row in rows]
    for index, row in enumerate(rows):  # the mean of the face's last five frames (one face in this clip)
        window = raw[max(0, index - 4) : index + 1]
        expected = [sum(scores[i] for scores in window) / len(window) for i in range(len(LABELS))]
        assert [float(row[f"smoothed_{label}"]) for label in LABELS] == pytest.approx(expected, abs=2e-6)
        assert row["smoothed_label"] == LABELS[expected.index(max(expected))]
    rows, summary = run(clip, tiny_model_dir, tmp_path / "raw")
    assert "smoothed_label" not in rows[0] and summary["smooth_frames"] == 0


def test_smoother_window() -> None:
    smoother = ScoreSmoother(2)
    assert smoother.update(1, {"a": 1.0, "b": 0.0}) == {"a": 1.0, "b": 0.0}
    assert smoother.update(2, {"a": 0.0, "b": 1.0}) == {"a": 0.0, "b": 1.0}  # each face its own window
    assert smoother.update(1, {"a": 0.0, "b": 1.0}) == {"a": 0.5, "b": 0.5}
    assert smoother.update(1, {"a": 0.0, "b": 1.0}) == {"a": 0.0, "b": 1.0}  # the first frame left the window
    with pytest.raises(ValueError, match="window"):
        ScoreSmoother(0)


def rows_of(scores: list[dict[str, float]]) -> list[FaceRow]:
    return [FaceRow(i, i / 10, 1, (0, 0, 10, 10), max(s, key=s.get), s) for i, s in enumerate(scores)]


def test_dominant_emotion_by_mean_probability_with_near_ties_named() -> None:
    """Sad first in more frames, happy higher in mean probability by 0.02: happy is dominant, and sad named too."""
    labels = ["happy", "sad"]
    near = face_summary(1, rows_of([{"happy": 0.45, "sad": 0.55}] * 3 + [{"happy": 0.6, "sad": 0.4}] * 2), labels)
    assert near["dominant_emotions"] == ["happy", "sad"] and near["mean_scores"] == {"happy": 0.51, "sad": 0.49}
    assert near["dominant_emotion"] == "happy" and near["share"] == {"happy": 0.4, "sad": 0.6}  # by mean, not share
    assert dominant_text(near) == "happy / sad (near tie)"
    clear = face_summary(2, rows_of([{"happy": 0.8, "sad": 0.2}, {"happy": 0.2, "sad": 0.8}, {"happy": 0.9,
                                                                                             "sad": 0.1}]), labels)
    assert clear["dominant_emotions"] == ["happy"] and dominant_text(clear) == "happy"
    assert faces_table([near, clear]) == [[1, 5, 0.0, 0.4, "happy / sad (near tie)", 51.0],
                                          [2, 3, 0.0, 0.2, "happy", 63.3]]
