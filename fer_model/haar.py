"""OpenCV's Haar cascades, which ship inside opencv-python-headless: the fallback face detector (fer_model.faces)
where RetinaFace's package is missing, and "haar-profile" for heads turned to the side.

The cascade runs on a grey copy downscaled to `detection_size` on its longest side (detection cost grows with the
pixel count; faces that FER can read are large enough to survive it), and the boxes are mapped back to the
input's coordinates. That copy is for DETECTION only: the classifier's crops never come from it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .face_boxes import Box, BoxDetector, gray_of, to_input


@dataclass(frozen=True)
class FaceDetector(BoxDetector):
    """Frontal-face Haar cascade; every parameter is a plain, documented knob (and BoxDetector's).

    Args:
        cascade: a file name under cv2.data.haarcascades, or a path to a cascade XML file.
        scale_factor / min_neighbors: OpenCV's detectMultiScale parameters (step between scales;
            overlapping hits required, higher = fewer false faces).
    """

    # alt2 + scale step 1.2 + 48 px minimum: 3x faster than OpenCV's sample settings (default cascade,
    # 1.1, 32 px) with the same faces on the examples, 2x2 and 3x3 tiles (benchmarks/inference.py).
    name = "haar"
    description = "OpenCV's frontal Haar cascade"
    cascade: str = "haarcascade_frontalface_alt2.xml"
    scale_factor: float = 1.2
    min_neighbors: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scale_factor <= 1.0:
            raise ValueError(f"scale_factor={self.scale_factor} must be > 1")
        if self.min_neighbors < 0:
            raise ValueError(f"min_neighbors={self.min_neighbors} must be >= 0")
        _classifier(self.cascade)  # fail now, not at the first request, if the cascade is missing

    def detect(self, image: np.ndarray) -> list[Box]:
        """Faces in a uint8 HxW grey or HxWx3 RGB image, left to right (then top to bottom), in its coordinates."""
        small, scale = self.small_copy(image)
        return self.kept(self._cascade(self.cascade, gray_of(small), scale, image.shape))

    def _cascade(self, cascade: str, small: np.ndarray, scale: float, shape: tuple[int, ...],
                 steps: tuple[float, int] | None = None) -> list[Box]:
        """One cascade's boxes on the small grey copy, in input pixels; `steps`: (scale_factor, min_neighbors)."""
        side = max(1, round(self.min_face_size * scale))
        scale_factor, min_neighbors = steps or (self.scale_factor, self.min_neighbors)
        found = _classifier(cascade).detectMultiScale(
            small, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(side, side))
        return [to_input(box, scale, shape) for box in np.asarray(found, dtype=np.float64).reshape(-1, 4)]


@dataclass(frozen=True)
class ProfileFaceDetector(FaceDetector):
    """The frontal cascade, then OpenCV's profile cascade on the image and on its mirror (it finds heads turned
    one way only): a profile box is kept where it overlaps no face already found (IoU < `overlap`)."""

    name = "haar-profile"
    description = "OpenCV's frontal and profile Haar cascades"
    profile_cascade: str = "haarcascade_profileface.xml"
    profile_scale_factor: float = 1.1  # the profile cascade misses turned heads at 1.2 (examples/cameraman.jpg)
    profile_min_neighbors: int = 4
    overlap: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        _classifier(self.profile_cascade)

    def detect(self, image: np.ndarray) -> list[Box]:
        from .tracking import iou

        small, scale = self.small_copy(image)
        small = gray_of(small)
        boxes = self._cascade(self.cascade, small, scale, image.shape)
        width, steps = image.shape[1], (self.profile_scale_factor, self.profile_min_neighbors)
        turned = self._cascade(self.profile_cascade, small, scale, image.shape, steps) + [
            (width - x - w, y, w, h) for x, y, w, h in
            self._cascade(self.profile_cascade, np.ascontiguousarray(small[:, ::-1]), scale, image.shape, steps)]
        for box in turned:
            if all(iou(box, kept) < self.overlap for kept in boxes):
                boxes.append(box)
        return self.kept(boxes)


_local = threading.local()  # one classifier per thread: detectMultiScale is not documented as thread-safe


def _classifier(cascade: str) -> cv2.CascadeClassifier:
    cache: dict[str, cv2.CascadeClassifier] = _local.__dict__.setdefault("classifiers", {})
    if cascade not in cache:
        path = Path(cascade) if Path(cascade).is_file() else Path(cv2.data.haarcascades) / cascade
        classifier = cv2.CascadeClassifier(str(path))
        if classifier.empty():
            raise FileNotFoundError(f"Haar cascade {cascade!r} not found (looked in {cv2.data.haarcascades}); "
                                    "install opencv-python-headless>=4.8,<5, which ships the cascade files")
        cache[cascade] = classifier
    return cache[cascade]
