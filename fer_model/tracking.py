"""Following faces across video frames by box overlap, so that each face keeps one id.

Each analysed frame's boxes are matched to the faces seen before by intersection over union (IoU), greedily,
best overlap first: a box whose best overlap with a known face is at least `min_iou` continues that face (and
its id). A box left over then continues the nearest face left over whose last box was about its size and whose
centre is within `max_shift` box sides of it (a face the detector missed for a few frames, a bowed head, comes
back near where it was, though it may have moved more than its boxes overlap). Any other box starts a new face
with the next id (1, 2, 3... in order of appearance). A face that no box continues for more than `max_gap_s`
seconds (`--max_gap_s`, default 1 s) is forgotten: if it comes back later it gets a NEW id. So ids are stable
while a face stays in view or is hidden briefly, not identities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .faces import Box

MIN_IOU = 0.3  # a face moves less than ~half its width between two analysed frames (0.1 s apart by default)
MAX_GAP_S = 1.0  # a detector misses a face in a frame now and then (a blink, a turn, a hand): bridge 1 s of that
MAX_SHIFT = 0.75  # a face back after a gap: its centre within 3/4 of a box side of where it was last seen (faces
# side by side are 1.5 sides apart or more; boxes that still overlap by IoU are matched first)
MAX_SIZE_RATIO = 1.5  # ... and its box side within 1.5x of its last one


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, width, height) boxes, 0 when they do not overlap."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@dataclass
class Track:
    """One face followed across frames: its id, where it was last seen and when."""

    face_id: int
    box: Box
    last_seen_s: float


@dataclass
class FaceTracker:
    """Gives every box of a frame a face id (`update`); see the module docstring for the rule."""

    min_iou: float = MIN_IOU
    max_gap_s: float = MAX_GAP_S
    max_shift: float = MAX_SHIFT
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.min_iou <= 1 or self.max_gap_s < 0 or self.max_shift < 0:
            raise ValueError(f"need 0 < min_iou <= 1, max_gap_s >= 0 and max_shift >= 0; got {self.min_iou}, "
                             f"{self.max_gap_s}, {self.max_shift}")

    def update(self, boxes: list[Box], time_s: float) -> list[int]:
        """The face id of each box (same order), for a frame at `time_s` seconds (frames in time order)."""
        self.tracks = [t for t in self.tracks if time_s - t.last_seen_s <= self.max_gap_s]
        pairs = sorted(((iou(box, track.box), b, t) for b, box in enumerate(boxes)
                        for t, track in enumerate(self.tracks)), reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for overlap, b, t in pairs:
            if overlap < self.min_iou:
                break
            if ids[b] is None and t not in taken:
                ids[b], taken = self.tracks[t].face_id, taken | {t}
                self.tracks[t].box, self.tracks[t].last_seen_s = boxes[b], time_s
        near = sorted((shift, b, t) for b, box in enumerate(boxes) for t, track in enumerate(self.tracks)
                      if ids[b] is None and t not in taken and (shift := _shift(box, track.box)) <= self.max_shift)
        for _, b, t in near:  # nearest first
            if ids[b] is None and t not in taken:
                ids[b], taken = self.tracks[t].face_id, taken | {t}
                self.tracks[t].box, self.tracks[t].last_seen_s = boxes[b], time_s
        for b, box in enumerate(boxes):
            if ids[b] is None:
                ids[b] = self.next_id
                self.tracks.append(Track(self.next_id, box, time_s))
                self.next_id += 1
        return [int(face_id) for face_id in ids]


def _shift(box: Box, last: Box) -> float:
    """How far `box`'s centre is from `last`'s, in box sides; infinite when their sizes differ by > MAX_SIZE_RATIO."""
    side, last_side = (box[2] + box[3]) / 2, (last[2] + last[3]) / 2
    if max(side, last_side) > MAX_SIZE_RATIO * min(side, last_side):
        return float("inf")
    dx = box[0] + box[2] / 2 - last[0] - last[2] / 2
    dy = box[1] + box[3] / 2 - last[1] - last[3] / 2
    return (dx * dx + dy * dy) ** 0.5 / last_side
