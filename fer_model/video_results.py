"""What a video analysis produces, as data: one row per face per analysed frame, the CSV, the per-face summary.

A row is (frame, time_s, face_id, box, label, scores[, smoothed]); the CSV has one line per row (frame, time_s,
face_id from 1, x, y, width, height, label and one column per emotion, in the model's label order: the raw
per-frame scores; with smoothing, then smoothed_label and one smoothed_<emotion> column per emotion). Per face, the
summary gives the frames it was seen in, when, the share of those frames in which each emotion came first, the
mean probability of each emotion and the dominant emotion: the highest mean probability, with any other within
NEAR_TIE of it named too (`dominant_emotions`), since a 0.006 lead is no verdict.
"""

from __future__ import annotations

import csv
import os
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .faces import Box

CSV_COLUMNS = ("frame", "time_s", "face_id", "x", "y", "width", "height", "label")  # then one per emotion
NEAR_TIE = 0.02  # emotions whose mean probabilities are this close are both named dominant
SMOOTH_S = 0.5  # --smooth: each face's probabilities averaged over its last 0.5 s of analysed frames


@dataclass(frozen=True)
class FaceRow:
    """One face in one analysed frame."""

    frame: int
    time_s: float
    face_id: int
    box: Box
    label: str
    scores: Mapping[str, float]
    smoothed: Mapping[str, float] | None = None  # the face's scores averaged over its last frames (--smooth)

    @property
    def shown(self) -> Mapping[str, float]:
        """The scores to show (labels drawn, timeline): the smoothed ones when there are."""
        return self.smoothed if self.smoothed is not None else self.scores


@dataclass
class ScoreSmoother:
    """Each face's probabilities averaged over its last `window` analysed frames (a trailing window, so the
    annotated video can be written frame by frame): one frame's flicker no longer flips the label."""

    window: int
    recent: dict[int, deque] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"the smoothing window must be >= 1 frame; got {self.window}")

    def update(self, face_id: int, scores: Mapping[str, float]) -> dict[str, float]:
        kept = self.recent.setdefault(face_id, deque(maxlen=self.window))
        kept.append(scores)
        return {label: round(sum(s[label] for s in kept) / len(kept), 6) for label in scores}


def face_rows(frame: int, time_s: float, faces: Sequence[Mapping[str, Any]], face_ids: Sequence[int],
              smoother: ScoreSmoother | None = None) -> list[FaceRow]:
    """EmotionRecognizer.recognize()["faces"] of one frame, with their tracked ids (and smoothed scores), as rows."""
    return [FaceRow(frame, round(time_s, 3), face_id, tuple(face["box"]), face["label"], dict(face["scores"]),
                    smoother.update(face_id, face["scores"]) if smoother else None)
            for face, face_id in zip(faces, face_ids, strict=True)]


def shown_faces(rows: Sequence[FaceRow]) -> list[dict[str, Any]]:
    """Rows as recognize()-style faces with the shown (smoothed, if any) label and score, for drawing."""
    faces = []
    for row in rows:
        label = max(row.shown, key=row.shown.get)
        faces.append({"box": list(row.box), "label": label, "score": row.shown[label], "scores": row.shown})
    return faces


def write_csv(rows: Sequence[FaceRow], labels: Sequence[str], path: str | os.PathLike) -> None:
    """The raw per-frame scores; with smoothing, the smoothed label and scores beside them."""
    smoothed = any(row.smoothed is not None for row in rows)
    extra = ["smoothed_label", *(f"smoothed_{label}" for label in labels)] if smoothed else []
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow([*CSV_COLUMNS, *labels, *extra])
        for row in rows:
            cells = [row.frame, f"{row.time_s:.3f}", row.face_id, *row.box, row.label,
                     *(f"{row.scores[label]:.6f}" for label in labels)]
            if smoothed:
                cells += [max(row.shown, key=row.shown.get), *(f"{row.shown[label]:.6f}" for label in labels)]
            writer.writerow(cells)


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
    exact = {label: sum(row.scores[label] for row in seen) / count for label in labels}
    ranked = sorted(labels, key=lambda label: -exact[label])
    dominant = [label for label in ranked if exact[ranked[0]] - exact[label] <= NEAR_TIE][:2]
    return {"face_id": face_id, "frames_seen": count, "first_seen_s": seen[0].time_s, "last_seen_s": seen[-1].time_s,
            "dominant_emotion": dominant[0], "dominant_emotions": dominant, "share": share,
            "mean_scores": {label: round(exact[label], 4) for label in labels}}


def dominant_text(face: Mapping[str, Any]) -> str:
    """ "happy", or "sad / happy (near tie)" when their mean probabilities are within NEAR_TIE."""
    names = face.get("dominant_emotions") or [face["dominant_emotion"]]
    return names[0] if len(names) == 1 else f"{' / '.join(names)} (near tie)"


def faces_table(faces: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """The summary's faces as table rows: id, frames, first/last seen (s), dominant emotion(s), mean probability."""
    return [[f["face_id"], f["frames_seen"], f["first_seen_s"], f["last_seen_s"], dominant_text(f),
             round(100 * f["mean_scores"][f["dominant_emotion"]], 1)] for f in faces]


FACES_TABLE_HEADERS = ["face", "frames seen", "first seen (s)", "last seen (s)", "dominant emotion",
                       "mean probability (%)"]
