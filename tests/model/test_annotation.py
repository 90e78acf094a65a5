"""Labels drawn by fer_model.annotation stay whole inside the image wherever the face is: touching each edge, each
corner, or filling the image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fer_model.annotation import draw_faces, label_colours, tag_position

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
SIZE = (400, 300)


def face(box: list[int], label: str = "surprise") -> dict:
    return {"box": box, "label": label, "score": 0.987, "scores": {}}


def text_pixels(box: list[int]) -> np.ndarray:
    """The label's text (black, the only dark pixels) on a white image with only this face drawn."""
    drawn = np.asarray(draw_faces(Image.new("RGB", SIZE, "white"), [face(box)], LABELS))
    return drawn.max(-1) < 100


def tag_colour_rows(box: list[int]) -> np.ndarray:
    drawn = np.asarray(draw_faces(Image.new("RGB", SIZE, "white"), [face(box)], LABELS))
    colour = np.array([int(label_colours(LABELS)["surprise"][i : i + 2], 16) for i in (1, 3, 5)])
    return (drawn == colour).all(-1)


@pytest.mark.parametrize("where, box", [
    ("right edge", [340, 120, 60, 60]), ("left edge", [0, 120, 60, 60]), ("top edge", [170, 0, 60, 60]),
    ("bottom edge", [170, 240, 60, 60]), ("top-right corner", [340, 0, 60, 60]),
    ("bottom-right corner", [340, 240, 60, 60]), ("whole image", [0, 0, 400, 300]),
])
def test_the_whole_label_is_drawn_inside_the_image(where: str, box: list[int]) -> None:
    """Its text has every pixel it has in the middle of the image (nothing cut off at an edge)."""
    text, reference = text_pixels(box), text_pixels([170, 120, 60, 60])
    ys, xs = np.nonzero(text)
    assert reference.sum() > 100 and text.sum() == reference.sum(), f"{where}: the label is cut or missing"
    width = np.nonzero(reference)[1]
    assert xs.max() - xs.min() == width.max() - width.min(), where
    assert tag_colour_rows(box)[ys.min() - 1, xs.min()], f"{where}: the text is not on its coloured tag"


def test_tag_position_prefers_above_then_below_then_inside() -> None:
    assert tag_position([100, 100, 50, 50], (80, 20), SIZE) == (100, 80)  # above
    assert tag_position([100, 5, 50, 50], (80, 20), SIZE) == (100, 55)  # below: no room above
    assert tag_position([0, 0, 400, 300], (80, 20), SIZE) == (0, 0)  # inside the top edge: no room either way
    assert tag_position([380, 100, 20, 20], (80, 20), SIZE) == (320, 80)  # ends at the right edge
    assert tag_position([0, 0, 10, 10], (500, 20), SIZE)[0] == 0  # wider than the image: starts at its left edge
