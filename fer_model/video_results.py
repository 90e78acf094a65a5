"""What a video analysis produces, as data: one row per face per analysed frame, the CSV, the per-face summary.

A row is (frame, time_s, face_id, box, label, scores); the CSV has one line per row (frame, time_s, face_id, x, y,
width, height, label and one column per emotion, in the model's label order). Per face, the summary gives the
frames it was seen in, when, the share of those frames in which each emotion came first, and the dominant
emotion (the largest share; ties go to the higher mean probability).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .faces import Box

CSV_COLUMNS = ("frame", "time_s", "face_id", "x", "y", "width", "height", "label")  # then one per emotion


@dataclass(frozen=True)
class FaceRow:
    """One face in one analysed frame."""

    frame: int
    time_s: float
    face_id: int
    box: Box
    label: str
    scores: Mapping[str, float]


def face_rows(frame: int, time_s: float, faces: Sequence[Mapping[str, Any]], face_ids: Sequence[int]) -> list[FaceRow]:
    """EmotionRecognizer.recognize()["faces"] of one frame, with their tracked ids, as rows."""
    return [FaceRow(frame, round(time_s, 3), face_id, tuple(face["box"]), face["label"], dict(face["scores"]))
            for face, face_id in zip(faces, face_ids, strict=True)]


def write_csv(rows: Sequence[FaceRow], labels: Sequence[str], path: str | os.PathLike) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow([*CSV_COLUMNS, *labels])
        for row in rows:
            writer.writerow([row.frame, f"{row.time_s:.3f}", row.face_id, *row.box, row.label,
                             *(f"{row.scores[label]:.6f}" for label in labels)])


def rows_by_face(rows: Sequence[FaceRow]) -> dict[int, list[FaceRow]]:
    """The rows of each face id, in time order."""
    by_face: dict[int, list[FaceRow]] = {}
    for row in rows:
        by_face.setdefault(row.face_id, []).append(row)
    return by_face


def summarize_faces(rows: Sequence[FaceRow], labels: Sequence[str]) -> list[dict[str, Any]]:
    """Per face id (in order of appearance): frames seen, first/last time, share per emotion, dominant emotion."""
    return [face_summary(face_id, seen, labels) for face_id, seen in sorted(rows_by_face(rows).items())]


def face_summary(face_id: int, seen: list[FaceRow], labels: Sequence[str]) -> dict[str, Any]:
    """One face's entry of summary.json, from its rows (`seen`, in time order)."""
    count = len(seen)
    share = {label: round(sum(row.label == label for row in seen) / count, 4) for label in labels}
    mean = {label: round(sum(row.scores[label] for row in seen) / count, 4) for label in labels}
    dominant = max(labels, key=lambda label: (share[label], mean[label]))
    return {"face_id": face_id, "frames_seen": count, "first_seen_s": seen[0].time_s, "last_seen_s": seen[-1].time_s,
            "dominant_emotion": dominant, "share": share, "mean_scores": mean}


def faces_table(faces: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """The summary's faces as table rows: id, frames, first/last seen (s), dominant emotion and its share (%)."""
    return [[f["face_id"], f["frames_seen"], f["first_seen_s"], f["last_seen_s"], f["dominant_emotion"],
             round(100 * f["share"][f["dominant_emotion"]], 1)] for f in faces]


FACES_TABLE_HEADERS = ["face", "frames seen", "first seen (s)", "last seen (s)", "dominant emotion", "share (%)"]
