"""What `python app.py` prints at start: an ONNX file's warning is one short line naming no server path (a Space's
log is public), and the file is still served as the library decides."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest

from fer_model import FerForImageClassification
from fer_model.onnx_runtime import INT8_FILENAME, export_onnx
from space.model import load_recognizer


def printed(err: str) -> list[str]:
    """stderr's non-empty lines, transformers' "Loading weights" progress bar aside."""
    return [line for line in err.splitlines() if line.strip() and "Loading weights" not in line]


def test_an_unchecked_int8_file_is_one_short_line_without_paths(tiny_model_dir: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "server-side-folder" / "model"
    shutil.copytree(tiny_model_dir, folder)
    onnx_file = export_onnx(FerForImageClassification.from_pretrained(folder), folder / INT8_FILENAME)
    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]  # as exported before fingerprints existed
    onnx.save(proto, str(onnx_file))
    recognizer = load_recognizer(str(folder))
    (line,) = printed(capsys.readouterr().err)
    assert line.startswith("app.py: warning: model_int8.onnx has no fingerprint"), line
    assert "server-side-folder" not in line and str(tmp_path) not in line
    assert recognizer.onnx_file == onnx_file


def test_a_checked_int8_file_prints_nothing(tiny_model_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    export_onnx(FerForImageClassification.from_pretrained(folder), folder / INT8_FILENAME)
    assert load_recognizer(str(folder)).onnx_file == folder / INT8_FILENAME
    assert printed(capsys.readouterr().err) == []
