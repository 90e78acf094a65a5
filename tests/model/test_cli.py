"""`python -m fer_model predict IMG... --model X`: one JSON line per readable image, exit code 2 otherwise.

Folders, globs, CSV and batching across images: test_folder_predict.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_model.__main__ import main
from tests.helpers.image_files import ASTRONAUT, CAT, GROUP, bad_files, no_face_images
from tests.helpers.paths import REPO


def test_one_json_line_per_image(tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", str(ASTRONAUT), str(GROUP), str(CAT), "--model", str(tiny_model_dir)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["file"] for line in lines] == [str(ASTRONAUT), str(GROUP), str(CAT)]
    assert [len(line["faces"]) for line in lines] == [1, 2, 0]
    assert [line["face_found"] for line in lines] == [True, True, False]
    assert err == ""


def test_no_face_images_give_no_emotion_in_json_and_csv(tiny_model_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    paths = []
    for name, image in no_face_images().items():
        paths.append(str(tmp_path / f"{name.replace(' ', '_')}.png"))
        image.save(paths[-1])
    table = tmp_path / "out.csv"
    assert main(["predict", *paths, "--model", str(tiny_model_dir), "--jsonl", str(tmp_path / "out.jsonl"),
                 "--csv", str(table)]) == 0
    assert capsys.readouterr().out == ""
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines == [{"file": path, "face_found": False, "faces": []} for path in paths]
    header, *rows = [line.split(",") for line in table.read_text().splitlines()]
    assert [row[:3] for row in rows] == [[path, "", "False"] for path in paths]  # one row each, saying no face
    assert [row[header.index("label")] for row in rows] == ["no face"] * 3
    assert all(cell == "" for row in rows for cell in row[3:7] + row[8:])  # no box, no score


def test_whole_image_option_classifies_and_says_so(tiny_model_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    table = tmp_path / "out.csv"
    assert main(["predict", str(CAT), "--whole_image", "--model", str(tiny_model_dir), "--jsonl",
                 str(tmp_path / "out.jsonl"), "--csv", str(table)]) == 0
    (line,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert line["face_found"] is False and line["whole_image"] is True and len(line["faces"]) == 1
    (row,) = table.read_text().splitlines()[1:]
    assert row.split(",")[1:7] == ["whole image", "False", "0", "0", "451", "300"]


def test_unreadable_files_are_reported_and_exit_2(tiny_model_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    files = bad_files(tmp_path)
    paths = [str(path) for path, _ in files.values()]
    assert main(["predict", *paths, str(ASTRONAUT), "--model", str(tiny_model_dir)]) == 2
    out, err = capsys.readouterr()
    assert [json.loads(line)["file"] for line in out.splitlines()] == [str(ASTRONAUT)]  # the good one still runs
    *messages, summary = err.splitlines()
    assert len(messages) == len(files)
    for message, (path, phrase) in zip(messages, files.values(), strict=True):
        assert message.startswith(f"{path}: ") and phrase in message
    assert summary == f"predict: 1 image(s) read, 1 face(s) found; {len(files)} input(s) could not be read"


def test_missing_model_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", str(ASTRONAUT), "--model", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert "no model folder" in err and "FER_MODEL" in err


def test_module_entry_point(tiny_model_dir: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "fer_model", "predict", str(ASTRONAUT), str(REPO / "README.md"),
                           "--model", str(tiny_model_dir), "--tta", "flip"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    (line,) = done.stdout.splitlines()
    assert json.loads(line)["face_found"] is True
    assert done.stderr.splitlines() == [
        f"{REPO / 'README.md'}: this is not an image file that can be read (use JPEG, PNG, WebP, GIF, BMP or TIFF)",
        "predict: 1 image(s) read, 1 face(s) found; 1 input(s) could not be read"]
