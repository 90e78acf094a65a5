"""Face detection behind one small interface (`Detector`: detect + expand), with the cascades that ship inside
opencv-python-headless (no download). DETECTORS names the choices (`detector=` in EmotionRecognizer, `--detector`
in the CLI and app.py): "haar" (the default: the frontal cascade) and "haar-profile" (the frontal cascade, then the
profile cascade looking both ways for heads turned to the side; benchmarks/detectors.py measures the two).

The cascade runs on a grey copy downscaled to `detection_size` on its longest side (detection cost
grows with the pixel count; faces that FER can read are large enough to survive it), and the boxes
are mapped back to the input's coordinates. That copy is for DETECTION only (shrunk with the pixel
module's one resize kernel all the same): the classifier's crops never come from it. `expand` adds the
margin used when cropping a face for the classifier, chosen on FER2013 validation (benchmarks/framing.py: faces
pasted into canvases, detected, cropped, classified): 5 % comes closest to classifying the original crops, the
15 % used before cost 2.5-4 points of accuracy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .image_processing import resize_array

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the input image


class Detector(Protocol):
    """What EmotionRecognizer needs of a face detector: boxes in a grey image and the crop to classify."""

    name: str

    def detect(self, gray: np.ndarray) -> list[Box]: ...

    def expand(self, box: Box, image_shape: tuple[int, ...]) -> Box: ...


@dataclass(frozen=True)
class FaceDetector:
    """Frontal-face detector; every parameter is a plain, documented knob.

    Args:
        cascade: a file name under cv2.data.haarcascades, or a path to a cascade XML file.
        detection_size: longest side (px) of the grey copy the cascade runs on; larger finds
            smaller faces, at a cost that grows with the square of the size.
        scale_factor / min_neighbors: OpenCV's detectMultiScale parameters (step between scales;
            overlapping hits required, higher = fewer false faces).
        min_face_size: smallest face side kept, in input pixels.
        margin: fraction of the box side added on every side when cropping (0.05 -> 1.1x wider).
    """

    # alt2 + scale step 1.2 + 48 px minimum: 3x faster than OpenCV's sample settings (default cascade,
    # 1.1, 32 px) with the same faces on the examples, 2x2 and 3x3 tiles (benchmarks/inference.py).
    name = "haar"  # a class attribute: not a parameter
    cascade: str = "haarcascade_frontalface_alt2.xml"
    detection_size: int = 640
    scale_factor: float = 1.2
    min_neighbors: int = 5
    min_face_size: int = 48  # the model's input side: smaller faces carry less detail than it was trained on
    margin: float = 0.05  # benchmarks/framing.py: the closest to FER2013's own framing for both cascades

    def __post_init__(self) -> None:
        if self.detection_size < 64:
            raise ValueError(f"detection_size={self.detection_size} must be >= 64 px")
        if self.scale_factor <= 1.0:
            raise ValueError(f"scale_factor={self.scale_factor} must be > 1")
        if self.min_neighbors < 0 or self.min_face_size < 1 or not 0 <= self.margin <= 1:
            raise ValueError(f"need min_neighbors >= 0, min_face_size >= 1 and 0 <= margin <= 1; got "
                             f"{self.min_neighbors}, {self.min_face_size}, {self.margin}")
        _classifier(self.cascade)  # fail now, not at the first request, if the cascade is missing

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Faces in a uint8 HxW grey image, left to right (then top to bottom), in its coordinates."""
        small, scale = self._small(gray)
        boxes = self._cascade(self.cascade, small, scale, gray.shape)
        return sorted((b for b in boxes if min(b[2], b[3]) >= self.min_face_size), key=lambda b: (b[0], b[1]))

    def _small(self, gray: np.ndarray) -> tuple[np.ndarray, float]:
        """The grey copy the cascades run on (at most detection_size px) and its scale."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"detect expects a uint8 HxW grey image; got {gray.dtype} {gray.shape}")
        scale = min(1.0, self.detection_size / max(gray.shape))
        # an explicit size of at least 1 px: fx/fy would round a 1x1500 strip's width to 0 and cv2.resize fails
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        return (gray if scale == 1.0 else resize_array(gray, size[::-1])), scale

    def _cascade(self, cascade: str, small: np.ndarray, scale: float, shape: tuple[int, ...],
                 steps: tuple[float, int] | None = None) -> list[Box]:
        """One cascade's boxes on the small copy, in input pixels; `steps`: (scale_factor, min_neighbors)."""
        side = max(1, round(self.min_face_size * scale))
        scale_factor, min_neighbors = steps or (self.scale_factor, self.min_neighbors)
        found = _classifier(cascade).detectMultiScale(
            small, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(side, side))
        return [_to_input(box, scale, shape) for box in np.asarray(found, dtype=np.float64).reshape(-1, 4)]

    def expand(self, box: Box, image_shape: tuple[int, ...]) -> Box:
        """The box grown by `margin` on each side, clipped to the image (the crop the classifier sees)."""
        x, y, w, h = box
        dx, dy = round(w * self.margin), round(h * self.margin)
        left, top = max(0, x - dx), max(0, y - dy)
        right, bottom = min(image_shape[1], x + w + dx), min(image_shape[0], y + h + dy)
        return left, top, right - left, bottom - top


@dataclass(frozen=True)
class ProfileFaceDetector(FaceDetector):
    """The frontal cascade, then OpenCV's profile cascade on the image and on its mirror (it finds heads turned
    one way only): a profile box is kept where it overlaps no face already found (IoU < `overlap`)."""

    name = "haar-profile"
    profile_cascade: str = "haarcascade_profileface.xml"
    profile_scale_factor: float = 1.1  # the profile cascade misses turned heads at 1.2 (examples/cameraman.jpg)
    profile_min_neighbors: int = 4
    overlap: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        _classifier(self.profile_cascade)

    def detect(self, gray: np.ndarray) -> list[Box]:
        from .tracking import iou

        small, scale = self._small(gray)
        boxes = self._cascade(self.cascade, small, scale, gray.shape)
        width, steps = gray.shape[1], (self.profile_scale_factor, self.profile_min_neighbors)
        turned = self._cascade(self.profile_cascade, small, scale, gray.shape, steps) + [
            (width - x - w, y, w, h) for x, y, w, h in
            self._cascade(self.profile_cascade, np.ascontiguousarray(small[:, ::-1]), scale, gray.shape, steps)]
        for box in turned:
            if all(iou(box, kept) < self.overlap for kept in boxes):
                boxes.append(box)
        return sorted((b for b in boxes if min(b[2], b[3]) >= self.min_face_size), key=lambda b: (b[0], b[1]))


DETECTORS: dict[str, type[FaceDetector]] = {"haar": FaceDetector, "haar-profile": ProfileFaceDetector}
DEFAULT_DETECTOR = "haar"


def make_detector(detector: str | Detector | None = None) -> Detector:
    """A detector from its name in DETECTORS (None: DEFAULT_DETECTOR), or the object given, as is."""
    if detector is None or isinstance(detector, str):
        name = detector or DEFAULT_DETECTOR
        if name not in DETECTORS:
            raise ValueError(f"detector={name!r} is not one of {sorted(DETECTORS)}")
        return DETECTORS[name]()
    return detector


def _to_input(box: np.ndarray, scale: float, shape: tuple[int, ...]) -> Box:
    """A box found on the downscaled copy -> integer pixels of the input, clipped to it."""
    x, y, w, h = (box / scale).round().astype(int).tolist()
    x, y = min(max(0, x), shape[1] - 1), min(max(0, y), shape[0] - 1)
    return x, y, min(w, shape[1] - x), min(h, shape[0] - y)


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
