"""fer_model.tracking: face ids kept by box overlap, new ids for new faces and for faces gone too long."""

from __future__ import annotations

import pytest

from fer_model.tracking import FaceTracker, iou


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges do not overlap
    assert iou((0, 0, 10, 10), (30, 30, 5, 5)) == 0.0


def test_moving_faces_keep_their_ids_in_any_order() -> None:
    tracker = FaceTracker()
    assert tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)], 0.0) == [1, 2]
    assert tracker.update([(190, 5, 50, 50), (10, 2, 50, 50)], 0.1) == [2, 1]  # listed in the other order
    assert tracker.update([(20, 4, 50, 50)], 0.2) == [1]  # face 2 missed in this frame
    assert tracker.update([(30, 4, 50, 50), (185, 5, 50, 50), (400, 0, 60, 60)], 0.3) == [1, 2, 3]


def test_a_face_gone_longer_than_the_gap_gets_a_new_id() -> None:
    tracker = FaceTracker(max_gap_s=1.0)
    assert tracker.update([(0, 0, 50, 50)], 0.0) == [1]
    assert tracker.update([(0, 0, 50, 50)], 0.9) == [1]  # missed for 0.9 s: the same face
    assert tracker.update([(0, 0, 50, 50)], 2.0) == [2]  # gone for 1.1 s: counted as a new face
    assert tracker.update([(400, 0, 50, 50)], 2.1) == [3]  # no overlap with any face: a new one


def test_one_box_continues_one_face_only() -> None:
    """Two boxes over one known face: the better overlap keeps its id, the other is a new face."""
    tracker = FaceTracker(min_iou=0.2)
    tracker.update([(0, 0, 100, 100)], 0.0)
    assert tracker.update([(40, 0, 100, 100), (5, 0, 100, 100)], 0.1) == [2, 1]


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="min_iou"):
        FaceTracker(min_iou=0)
