"""benchmarks/fetch_afw.py and benchmarks/detectors.py: AFW's label text -> boxes.json, the matching that gives recall
and precision (small faces ignored), and RetinaFace against Haar on AFW itself where it has been fetched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.detectors import folder_set, matches, score
from benchmarks.fetch_afw import DEFAULT_OUT, convert, records
from fer_model.retina import missing_reason


def test_afw_label_text_becomes_boxes_json(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "images").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (64, 48)).save(repo / "images" / name)
    (repo / "filenames.txt").write_text("a.jpg*b.jpg*")
    (repo / "faces.txt").write_text("[10 20;60.6 80]*[1 2;11 12][20.2 30;40 50]*")
    (repo / "poses.txt").write_text("[0.785398163397448 0 0]*[0 0 0][-1.5707963267949 0.1 0]*")
    assert records("[1 2;3 4][5 6;7 8]*[9 10;11 12]*") == [[[1, 2, 3, 4], [5, 6, 7, 8]], [[9, 10, 11, 12]]]
    convert(repo, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "boxes.json").read_text())
    assert [(i["file"], i["boxes"], i["yaw_degrees"]) for i in saved["images"]] == [
        ("images/a.jpg", [[10, 20, 51, 60]], [45]), ("images/b.jpg", [[1, 2, 10, 10], [20, 30, 20, 20]], [0, -90])]
    assert (tmp_path / "out" / "images" / "b.jpg").is_file()
    (repo / "poses.txt").write_text("[0 0 0]*")
    with pytest.raises(ValueError, match="2 names, 2 face records, 1 pose records"):
        convert(repo, tmp_path / "again")


def test_matching_is_one_to_one_and_ignores_faces_under_the_minimum() -> None:
    truth = [(0, 0, 100, 100), (200, 0, 100, 100), (400, 0, 30, 30)]  # the third is under 48 px: ignored
    found = [(5, 5, 100, 100), (0, 0, 95, 95), (400, 0, 30, 30), (600, 0, 80, 80)]
    assert sorted(matches(found, truth)) == [(1, 0), (2, 2)]  # the best overlap wins face 0; box 0 is unmatched

    class Fixed:
        def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
            return found

    figures = score(Fixed(), [(Image.new("RGB", (700, 200)), truth)], [[0.0, 60.0, 0.0]])
    # 1 of the 2 faces that count; 3 detections count (the one on the ignored face does not), 1 of them right
    assert figures["recall"] == 0.5 and figures["faces"] == 2 and figures["detections"] == 3
    assert figures["precision"] == pytest.approx(1 / 3) and figures["turned"] == 0.0


@pytest.mark.skipif(not (DEFAULT_OUT / "boxes.json").is_file(),
                    reason=f"AFW not fetched into {DEFAULT_OUT} (python benchmarks/fetch_afw.py)")
@pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))
def test_retinaface_finds_more_afw_faces_than_haar_at_no_worse_precision() -> None:
    from fer_model.faces import make_detector

    images, yaws = folder_set(DEFAULT_OUT, limit=20)
    haar, retina = (score(make_detector(name), images, yaws) for name in ("haar", "retinaface"))
    assert retina["recall"] >= haar["recall"] + 0.2 and retina["precision"] >= haar["precision"]
