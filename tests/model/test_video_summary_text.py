"""`python -m fer_model video` prints one readable sentence per face; --json keeps summary.json's line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fer_model.__main__ import main, video_summary_text
from tests.helpers.video_clips import moving_faces_clip

SENTENCE = re.compile(r"^Face (\d+): mostly (\w+) \((\d+) % of its (\d+) frames?\), seen from ([\d.]+) s to "
                      r"([\d.]+) s\.$")


def test_the_summary_is_one_sentence_per_face_and_agrees_with_summary_json(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clip = moving_faces_clip(tmp_path / "two.mp4", seconds=1.0, enter_leave=(0.3, 0.8))
    out = tmp_path / "out"
    assert main(["video", str(clip.path), "--out", str(out), "--model", str(tiny_model_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads((out / "summary.json").read_text())
    assert lines[0] == "two.mp4: 1.0 s, 10 of 10 frames analysed; 2 faces followed."  # a 10 frames/s clip
    sentences = [SENTENCE.match(line) for line in lines[1:-1]]
    assert all(sentences) and len(sentences) == len(summary["faces"]) == 2, lines
    for match, face in zip(sentences, summary["faces"], strict=True):
        number, emotion, share, frames = match.group(1), match.group(2), match.group(3), match.group(4)
        assert int(number) == face["face_id"] and emotion == face["dominant_emotion"]
        assert int(share) == round(100 * face["share"][emotion]) and int(frames) == face["frames_seen"]
    assert lines[-1].startswith(f"Files in {out}: emotions.csv")
    assert not any(line.startswith("{") for line in lines)  # no JSON unless asked


def test_json_flag_prints_summary_json(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clip = moving_faces_clip(tmp_path / "one.mp4", seconds=0.5, enter_leave=(9, 9))
    out = tmp_path / "out"
    assert main(["video", str(clip.path), "--out", str(out), "--model", str(tiny_model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((out / "summary.json").read_text())


def test_no_face_and_a_single_frame_read_well() -> None:
    summary = {"video": "empty.mp4", "duration_s": 2.04, "frames_analysed": 20, "frames_read": 61, "faces": []}
    assert video_summary_text(summary, "o").splitlines()[0] == "empty.mp4: 2.0 s, 20 of 61 frames analysed; " \
        "no face found."
    summary["faces"] = [{"face_id": 3, "dominant_emotion": "sad", "share": {"sad": 1.0}, "frames_seen": 1,
                         "first_seen_s": 0.5, "last_seen_s": 0.5}]
    assert video_summary_text(summary, "o").splitlines()[1] == "Face 3: mostly sad (100 % of its 1 frame), seen " \
        "from 0.5 s to 0.5 s."
