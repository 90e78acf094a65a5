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


def test_a_face_hidden_briefly_that_comes_back_near_keeps_its_id() -> None:
    """Back after 0.8 s, moved so far that the boxes overlap less than min_iou (IoU 0.18), but within half a side."""
    tracker = FaceTracker()
    assert tracker.update([(100, 100, 80, 80)], 0.0) == [1]
    assert tracker.update([(138, 110, 80, 80)], 0.8) == [1]
    assert tracker.update([(400, 100, 80, 80)], 0.9) == [2]  # far from face 1: another face
    assert tracker.update([(140, 112, 200, 200)], 1.0) == [3]  # near, but 2.5x the size: another face
    assert FaceTracker(max_shift=0).update([(0, 0, 10, 10)], 0.0) == [1]
    with pytest.raises(ValueError, match="max_shift"):
        FaceTracker(max_shift=-1)


def test_two_hidden_faces_come_back_with_their_own_ids() -> None:
    tracker = FaceTracker()
    assert tracker.update([(100, 100, 80, 80), (300, 100, 80, 80)], 0.0) == [1, 2]
    assert tracker.update([(272, 128, 80, 80), (128, 128, 80, 80)], 0.6) == [2, 1]  # IoU 0.27 each: by the shift
