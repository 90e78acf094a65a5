"""`python -m fer_model predict` over folders and globs (fer_model/batch_predict.py) and the recognizer's batching
of faces across images (`recognize_many`): the same results as recognize() per image, a CSV row per face, JSON
lines, unreadable inputs reported and counted, exit code 2, output files only when complete, the progress bar on
stderr only."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from fer_model import EmotionRecognizer
from fer_model.__main__ import main
from fer_model.batch_predict import CSV_COLUMNS, IMAGE_SUFFIXES, expand_inputs
from fer_model.onnx_runtime import OnnxClassifier, export_onnx
from tests.helpers.image_files import ASTRONAUT, CAT, GROUP
from tests.helpers.paths import REPO

GRACE = REPO / "examples" / "grace_hopper.jpg"


def assert_same_results(batched: list[dict], single: list[dict]) -> None:
    """Boxes, face_found and labels equal; probabilities equal up to float noise of another batch composition."""
    assert len(batched) == len(single)
    for got, expected in zip(batched, single, strict=True):
        assert got["face_found"] == expected["face_found"]
        assert [face["box"] for face in got["faces"]] == [face["box"] for face in expected["faces"]]
        for face, reference in zip(got["faces"], expected["faces"], strict=True):
            assert face["scores"] == pytest.approx(reference["scores"], abs=2e-6)
            assert face["label"] == reference["label"]


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """One face, two faces, no face, a 2x2 tile (four faces), and a photo larger than the 1280-px working copy
    without a face (whole_image=True classifies the working copy)."""
    astronaut = Image.open(ASTRONAUT).convert("RGB")
    tile = Image.new("RGB", (2 * astronaut.width, 2 * astronaut.height))
    for x in (0, astronaut.width):
        for y in (0, astronaut.height):
            tile.paste(astronaut, (x, y))
    large = Image.open(CAT).convert("RGB").resize((1600, 1200))
    return [astronaut, Image.open(GROUP).convert("RGB"), Image.open(CAT).convert("RGB"), tile, large,
            Image.open(GRACE).convert("RGB")]


@pytest.fixture(scope="module")
def onnx_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model folder with an fp32 ONNX export as its served file."""
    from fer_model.loading import load_model

    folder = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(tiny_model_dir, folder)
    export_onnx(load_model(folder)[0], folder / "model_int8.onnx")  # fp32 is enough to check the batching
    return folder


@pytest.mark.parametrize("runtime", ["pytorch", "onnx"])
def test_recognize_many_equals_recognize_per_image(photos: list[Image.Image], tiny_model_dir: Path,
                                                   onnx_model_dir: Path, runtime: str) -> None:
    recognizer = (EmotionRecognizer.from_pretrained(tiny_model_dir, onnx=None) if runtime == "pytorch"
                  else EmotionRecognizer.from_pretrained(onnx_model_dir))
    assert isinstance(recognizer.runtime, OnnxClassifier) == (runtime == "onnx")
    for whole_image, faces in ((False, [1, 2, 0, 4, 0, 1]), (True, [1, 2, 1, 4, 1, 1])):
        single = [recognizer.recognize(photo, whole_image=whole_image) for photo in photos]
        assert [len(result["faces"]) for result in single] == faces
        assert [result["face_found"] for result in single] == [True, True, False, True, False, True]
        for batch_size in (1, 3, None):  # a forward per image; batches across images (3 faces met mid-image); one
            batched = recognizer.recognize_many(iter(photos), batch_size=batch_size, whole_image=whole_image)
            assert_same_results(list(batched), single)


def test_recognize_many_runs_one_forward_per_batch_of_faces(photos: list[Image.Image], tiny_model_dir: Path) -> None:
    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir, onnx=None, whole_image=True)
    sizes = []
    forward = recognizer.runtime
    recognizer.runtime = lambda pixel_values: sizes.append(len(pixel_values)) or forward(pixel_values)
    list(recognizer.recognize_many(photos * 2, batch_size=4))  # faces (or whole images) 1, 2, 1, 4, 1, 1 twice
    # a forward once 4 are waiting: 1+2+1 | 4 | 1+1+1+2 | 1+4 | 1+1 at the end (20 in 5 forwards, not 12)
    assert sizes == [4, 4, 5, 5, 2]
    recognizer.tta, sizes[:] = "flip", []  # a face is 2 model inputs: 1+2 | 1+4 | 1+1, each doubled
    list(recognizer.recognize_many(photos, batch_size=4))
    assert sizes == [6, 10, 4]


@pytest.fixture
def folder_tree(tmp_path: Path) -> dict[str, Path]:
    """photos/ with nested subfolders, a text file among them and one unreadable .jpg; more/ for a glob."""
    root, more = tmp_path / "photos", tmp_path / "more"
    (root / "sub" / "deeper").mkdir(parents=True)
    more.mkdir()
    shutil.copy(ASTRONAUT, root / "a.jpg")
    (root / "bad.jpg").write_bytes(b"not a photo\n")
    shutil.copy(GROUP, root / "sub" / "b.JPG")  # suffixes in any case
    Image.open(CAT).save(root / "sub" / "deeper" / "c.png")
    (root / "sub" / "notes.txt").write_text("not an image: skipped and counted")
    shutil.copy(GRACE, more / "x.jpg")
    shutil.copy(CAT, more / "y.jpeg")  # not matched by *.jpg
    return {"root": root, "more": more}


def test_folders_and_globs_expand_in_order(folder_tree: dict[str, Path], tmp_path: Path) -> None:
    root, more = folder_tree["root"], folder_tree["more"]
    (tmp_path / "empty").mkdir()
    inputs = expand_inputs([str(root), f"{more}/*.jpg", str(tmp_path / "none-*.png"), str(tmp_path / "empty"),
                            str(tmp_path / "missing.jpg"), f"{tmp_path}/**/c.png"])
    assert inputs.entries == [
        (str(root / "a.jpg"), None), (str(root / "bad.jpg"), None), (str(root / "sub" / "b.JPG"), None),
        (str(root / "sub" / "deeper" / "c.png"), None), (str(more / "x.jpg"), None),
        (str(tmp_path / "none-*.png"), "no file matches this pattern"),
        (str(tmp_path / "empty"), f"no image files in this folder (looked for {', '.join(IMAGE_SUFFIXES)})"),
        (str(tmp_path / "missing.jpg"), None),  # reading it says "file not found"
        (str(root / "sub" / "deeper" / "c.png"), None),
    ]
    assert inputs.skipped == 1


def test_folder_and_glob_to_csv_with_a_bad_file(folder_tree: dict[str, Path], tiny_model_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    root, more = folder_tree["root"], folder_tree["more"]
    table = tmp_path / "emotions.csv"
    assert main(["predict", str(root), f"{more}/*.jpg", "--csv", str(table), "--model", str(tiny_model_dir),
                 "--batch_size", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # --csv alone: nothing on stdout
    assert err.splitlines() == [
        f"{root / 'bad.jpg'}: this is not an image file that can be read (use JPEG, PNG, WebP, GIF, BMP or TIFF)",
        "predict: 4 image(s) read, 4 face(s) found; 1 input(s) could not be read; 1 other file(s) in the folders "
        "skipped (no image suffix)"]

    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir)
    with table.open(newline="") as file:
        header, *rows = list(csv.reader(file))
    assert header == [*CSV_COLUMNS, *recognizer.labels]
    files = [root / "a.jpg", root / "sub" / "b.JPG", root / "sub" / "deeper" / "c.png", more / "x.jpg"]
    expected_rows = []
    for path in files:
        image = Image.open(path).convert("RGB")
        result = recognizer.recognize(image)
        for index, face in enumerate(result["faces"] or [None], 1):  # no face: one row saying so
            expected_rows.append((str(path), index if face else "", str(result["face_found"]), face))
    assert [(row[0], row[1], row[2]) for row in rows] == [
        (file, str(index), found) for file, index, found, _ in expected_rows]
    assert [row[1] for row in rows if row[0] == str(root / "sub" / "b.JPG")] == ["1", "2"]  # one row per face
    for row, (_, _, _, face) in zip(rows, expected_rows, strict=True):
        if face is None:
            assert row[3:] == ["", "", "", "", "no face", "", *[""] * len(recognizer.labels)]
            continue
        assert [int(value) for value in row[3:7]] == face["box"]
        assert row[7] == face["label"] and float(row[8]) == pytest.approx(face["score"], abs=2e-6)
        assert [float(value) for value in row[9:]] == pytest.approx(list(face["scores"].values()), abs=2e-6)
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


def test_jsonl_file_and_csv_together(folder_tree: dict[str, Path], tiny_model_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    lines_file, table = tmp_path / "out.jsonl", tmp_path / "out.csv"
    assert main(["predict", str(folder_tree["more"]), "--jsonl", str(lines_file), "--csv", str(table),
                 "--model", str(tiny_model_dir)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""  # every input read: no summary line
    lines = [json.loads(line) for line in lines_file.read_text().splitlines()]
    assert [line["file"] for line in lines] == [str(folder_tree["more"] / "x.jpg"), str(folder_tree["more"] / "y.jpeg")]
    assert [line["face_found"] for line in lines] == [True, False]
    assert len(table.read_text().splitlines()) == 1 + sum(max(1, len(line["faces"])) for line in lines)


def test_stdout_lines_stream_while_the_bar_goes_to_a_terminal_stderr(folder_tree: dict[str, Path],
                                                                     tiny_model_dir: Path, monkeypatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stdout, stderr = io.StringIO(), Terminal()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["predict", str(folder_tree["more"]), "--model", str(tiny_model_dir)]) == 0
    assert [json.loads(line)["file"] for line in stdout.getvalue().splitlines()] == [
        str(folder_tree["more"] / "x.jpg"), str(folder_tree["more"] / "y.jpeg")]
    assert "predict: 100%" in stderr.getvalue() and "2/2" in stderr.getvalue()


def test_an_interrupted_run_leaves_no_output_file(folder_tree: dict[str, Path], tiny_model_dir: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    import fer_model.batch_predict as batch_predict

    calls = []

    def interrupted(path: str):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return Image.open(path).convert("RGB")

    monkeypatch.setattr(batch_predict, "load_image", interrupted)
    table = tmp_path / "emotions.csv"
    with pytest.raises(KeyboardInterrupt):
        main(["predict", str(folder_tree["root"]), "--csv", str(table), "--model", str(tiny_model_dir)])
    assert not table.exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(("option", "value", "phrase"), [
    ("--csv", "missing-folder/out.csv", "the folder"),
    ("--jsonl", ".", "this is a folder"),
    ("--batch_size", "0", "must be >= 1"),
])
def test_bad_output_options_are_named_before_the_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                             monkeypatch, option: str, value: str, phrase: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(ASTRONAUT), option, value, "--model", str(tmp_path / "no-model")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option} {value}: ") and phrase in err and "no model folder" not in err
