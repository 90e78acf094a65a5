"""What every face detector shares: the downscaled copy it runs on, the boxes mapped back to the input, the
smallest face kept, and the margin crop the classifier sees (fer_model.faces names the detectors)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import cv2
import numpy as np
from PIL import Image

from .image_processing import array_to_uint8, flatten_mode, resize_array

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the input image
Eyes = tuple[tuple[float, float], tuple[float, float]]  # (x, y) of the right then the left eye, as the person sees
Found = TypeVar("Found")  # a box, or a (box, landmarks) pair


class Detector(Protocol):
    """What EmotionRecognizer needs of a face detector: boxes in an 8-bit image and the crop to classify."""

    name: str

    def detect(self, image: np.ndarray) -> list[Box]: ...

    def expand(self, box: Box, image_shape: tuple[int, ...]) -> Box: ...


@dataclass(frozen=True)
class BoxDetector:
    """The knobs every detector has.

    Args:
        detection_size: longest side (px) of the copy the detector runs on; larger finds smaller faces, at a
            cost that grows with the square of the size.
        min_face_size: smallest face kept (its box's longer side, the side of a square crop), in input pixels.
        margin: fraction of the box side added on every side when cropping (0.05 -> 1.1x wider).
        square: crop a square around the box centre, its side the box's longer side (boxes that are taller
            than wide would otherwise be squeezed into the model's square input).
        offset: fraction of the crop's height by which it moves down from the box (negative: up), for a detector
            whose boxes sit higher or lower on the face than FER2013's crops.
    """

    name = "base"  # class attributes, not parameters
    description = ""
    detection_size: int = 640
    min_face_size: int = 48  # the model's input side: smaller faces carry less detail than it was trained on
    margin: float = 0.05
    square: bool = False
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.detection_size < 64:
            raise ValueError(f"detection_size={self.detection_size} must be >= 64 px")
        if self.min_face_size < 1 or not -0.25 <= self.margin <= 1 or not -0.5 <= self.offset <= 0.5:
            raise ValueError(f"need min_face_size >= 1, -0.25 <= margin <= 1 and -0.5 <= offset <= 0.5; got "
                             f"{self.min_face_size}, {self.margin}, {self.offset}")

    def small_copy(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The copy the detector runs on (at most detection_size px on its longest side) and its scale."""
        if image.dtype != np.uint8 or not (image.ndim == 2 or image.ndim == 3 and image.shape[2] == 3):
            raise ValueError(f"detect expects a uint8 HxW grey or HxWx3 RGB image; got {image.dtype} {image.shape}")
        scale = min(1.0, self.detection_size / max(image.shape[:2]))
        # an explicit size of at least 1 px: fx/fy would round a 1x1500 strip's width to 0 and cv2.resize fails
        size = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
        return (image if scale == 1.0 else resize_array(image, size)), scale

    def kept(self, found: list[Found], box: Callable[[Found], Box] = lambda b: b) -> list[Found]:
        """Faces whose box (`box(face)`) is at least min_face_size, left to right (then top to bottom)."""
        large = (face for face in found if max(box(face)[2:]) >= self.min_face_size)
        return sorted(large, key=lambda face: box(face)[:2])

    def expand(self, box: Box, image_shape: tuple[int, ...]) -> Box:
        """The box grown by `margin` on each side (squared first if `square`), moved down by `offset`, clipped to
        the image: the crop the classifier sees."""
        x, y, w, h = box
        if self.square:
            side = max(w, h)
            x, y, w, h = x + (w - side) / 2, y + (h - side) / 2, side, side
        dx, dy = w * self.margin, h * self.margin
        y += (h + 2 * dy) * self.offset
        left, top = round(x - dx), round(y - dy)
        right, bottom = left + round(w + 2 * dx), top + round(h + 2 * dy)  # the size rounded once, not each side
        left, top, right, bottom = max(0, left), max(0, top), min(image_shape[1], right), min(image_shape[0], bottom)
        return left, top, right - left, bottom - top


def gray_of(image: np.ndarray) -> np.ndarray:
    """uint8 HxW grey of an 8-bit grey or RGB image (ITU-R 601 weights, as PIL's "L")."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def to_input(box: np.ndarray | list[float], scale: float, shape: tuple[int, ...]) -> Box:
    """A box (x, y, w, h) found on the downscaled copy -> integer pixels of the input, clipped to it."""
    x, y, w, h = (np.asarray(box, dtype=np.float64) / scale).tolist()
    left, top = min(max(0, round(x)), shape[1] - 1), min(max(0, round(y)), shape[0] - 1)
    right, bottom = min(shape[1], round(x + w)), min(shape[0], round(y + h))
    return left, top, max(0, right - left), max(0, bottom - top)


def levelled_crop(image: Image.Image | np.ndarray, crop_box: Box, eyes: Eyes) -> np.ndarray:
    """The crop box of an image turned about its centre so that the eyes are level (a head tilted to one side is
    classified upright), as 8-bit grey or RGB. Only a patch around the crop is turned; pixels beyond the image are
    mirrored."""
    (rx, ry), (lx, ly) = eyes
    x, y, w, h = crop_box
    width, height = image.size if isinstance(image, Image.Image) else image.shape[1::-1]
    cx, cy, reach = x + w / 2, y + h / 2, math.ceil(math.hypot(w, h) / 2) + 1
    left, top = max(0, math.floor(cx - reach)), max(0, math.floor(cy - reach))
    right, bottom = min(width, math.ceil(cx + reach)), min(height, math.ceil(cy + reach))
    patch = (np.asarray(flatten_mode(image.crop((left, top, right, bottom)))) if isinstance(image, Image.Image)
             else array_to_uint8(image[top:bottom, left:right]))
    turn = cv2.getRotationMatrix2D((cx - left, cy - top), math.degrees(math.atan2(ly - ry, lx - rx)), 1.0)
    turned = cv2.warpAffine(patch, turn, patch.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return turned[y - top : y - top + h, x - left : x - left + w]
