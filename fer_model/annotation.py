"""Drawing EmotionRecognizer results on an image: a box and "n label 93%" per face, one colour per emotion.

The colours follow the model's labels (config.id2label order), so a model trained on other emotions gets
its own legend without a list of names here; FER2013's order (angry, disgust, fear, happy, neutral, sad,
surprise) gets red, green, purple, yellow, grey, blue and orange. Used by the app's Photo, Live and Video tabs,
the annotated video and the emotion timeline (fer_model.video, fer_model.timeline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

# One colour per label index, easy to tell apart; it repeats for models with more than 12 labels.
PALETTE = ("#e6194b", "#3cb44b", "#911eb4", "#ffd21e", "#a9a9a9", "#4363d8", "#f58231",
           "#42d4f4", "#f032e6", "#bfef45", "#469990", "#9a6324")
TEXT_COLOUR = "black"  # readable on every palette colour


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """label -> "#rrggbb", by the label's index in the model's id2label."""
    return {label: PALETTE[index % len(PALETTE)] for index, label in enumerate(labels)}


def largest_face(faces: Sequence[Mapping[str, Any]]) -> int:
    """Index of the face with the largest box: the one a UI shows first."""
    return max(range(len(faces)), key=lambda i: faces[i]["box"][2] * faces[i]["box"][3])


def draw_faces(image: Image.Image, faces: Sequence[Mapping[str, Any]], labels: Sequence[str],
               numbers: Sequence[int] | None = None) -> Image.Image:
    """A copy of the image with a box and "n label 93%" per face, n from `numbers` (a video's face ids), else
    1, 2, 3... in list order.

    `faces` are EmotionRecognizer.recognize()["faces"] (box [x, y, w, h] in this image's pixels); line width
    and font size follow the image size so the labels stay readable on phone photos and webcam frames alike.
    """
    canvas = image.convert("RGB")  # always a copy: the caller's image is left as it was
    draw = ImageDraw.Draw(canvas)
    side = max(canvas.size)
    font = ImageFont.load_default(size=max(12, side // 40))
    width = max(2, side // 250)
    colours = label_colours(labels)
    for number, face in zip(range(1, len(faces) + 1) if numbers is None else numbers, faces, strict=True):
        x, y, w, h = face["box"]
        colour = colours[face["label"]]
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=width)
        text = f"{number} {face['label']} {face['score']:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tag = (right - left + 2 * width, bottom - top + 2 * width)
        tag_x, tag_y = tag_position(face["box"], tag, canvas.size)
        draw.rectangle((tag_x, tag_y, tag_x + tag[0] - 1, tag_y + tag[1] - 1), fill=colour)
        draw.text((tag_x + width - left, tag_y + width - top), text, fill=TEXT_COLOUR, font=font)
    return canvas


def tag_position(box: Sequence[int], tag: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of a face's label: above the box, below it when no room, inside its top edge when neither
    fits; shifted left so it ends inside the image (a face at the right edge keeps its whole label)."""
    x, y, _, h = box
    (tag_w, tag_h), (width, height) = tag, size
    if y >= tag_h:
        tag_y = y - tag_h
    elif y + h + tag_h <= height:
        tag_y = y + h
    else:
        tag_y = max(0, min(y, height - tag_h))
    return max(0, min(x, width - tag_w)), tag_y
