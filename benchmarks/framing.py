"""Does the crop the classifier sees match FER2013's framing? FER2013 validation faces pasted into larger canvases
(two scales; backgrounds: flat grey, noise, or the face's own borders mirrored outwards, which gives the detector
no hard edge at the crop's border), found by each detector, cropped with its box grown by a margin, classified, against
the accuracy of the original crops (direct). The margin is chosen on validation: the one whose detect-crop-classify
accuracy on the detected faces comes closest to the direct accuracy on the same faces. The crop is the detector's
own `expand` (RetinaFace's is squared) with the margin replaced; then, at the chosen margin, the crop moved up or
down (`offset`), chosen the same way.

    nice -n 10 python benchmarks/framing.py --model ../shared/models/fer-vgg16 --dataset ../shared/fer2013 \
        [--samples 400] [--detectors retinaface haar haar-profile] [--backgrounds grey noise reflect] [--tilt 15]

Eye-levelling, for detectors that give eye landmarks (RetinaFace): the crop turned about its centre so that the
eyes are level (fer_model.face_boxes.levelled_crop, as the recognizer does), at the chosen margin, measured on upright canvases and on canvases tilted by
+-`--tilt` degrees. Accuracy "all" counts a face the detector missed as wrong; "found" is over the faces it found,
beside the direct accuracy on those same faces.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_model import EmotionRecognizer
from fer_model.data import load_fer2013
from fer_model.face_boxes import levelled_crop
from fer_model.faces import DETECTORS, make_detector
from fer_model.tracking import iou

MARGINS = (-0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2)
OFFSETS = (-0.1, -0.05, 0.0, 0.05, 0.1)  # tried at the chosen margin
SCALES = (2, 3)  # the 48-px face pasted at 96 and 144 px
CANVAS = 320
BACKGROUNDS = ("grey", "noise", "reflect")


def canvases(faces: list[np.ndarray], backgrounds: tuple[str, ...] = BACKGROUNDS, seed: int = 0, tilt: float = 0,
             ) -> list[tuple[np.ndarray, tuple[int, int, int, int], int]]:
    """(grey canvas, where the face was pasted, face index) for every face x scale x background; with `tilt`, each
    canvas turned by +tilt or -tilt degrees (alternately) about the face's centre."""
    rng = np.random.default_rng(seed)
    out = []
    for index, face in enumerate(faces):
        for scale in SCALES:
            side = 48 * scale
            big = np.asarray(Image.fromarray(face).resize((side, side), Image.Resampling.BICUBIC))
            for background in backgrounds:
                x, y = (int(v) for v in rng.integers(0, CANVAS - side, 2))
                if background == "reflect":  # the face's borders mirrored out to the canvas' edges
                    canvas = cv2.copyMakeBorder(big, y, CANVAS - side - y, x, CANVAS - side - x, cv2.BORDER_REFLECT)
                else:
                    canvas = (np.full((CANVAS, CANVAS), 110, np.uint8) if background == "grey"
                              else rng.integers(0, 256, (CANVAS, CANVAS), dtype=np.uint8))
                    canvas[y : y + side, x : x + side] = big
                if tilt:
                    turn = cv2.getRotationMatrix2D((x + side / 2, y + side / 2), tilt * (-1) ** len(out), 1.0)
                    canvas = cv2.warpAffine(canvas, turn, (CANVAS, CANVAS), borderMode=cv2.BORDER_REFLECT)
                out.append((canvas, (x, y, side, side), index))
    return out


def crop(canvas: np.ndarray, box: tuple[int, int, int, int], detector: object,
         eyes: tuple[tuple[float, float], tuple[float, float]] | None = None) -> np.ndarray:
    """The detector's crop of the box, as the recognizer cuts it; with `eyes`, turned so that they are level."""
    x, y, w, h = detector.expand(box, canvas.shape)
    return canvas[y : y + h, x : x + w] if eyes is None else levelled_crop(canvas, (x, y, w, h), eyes)


def detected(detector: object, placed: list) -> list[tuple[np.ndarray, tuple, int, tuple | None]]:
    """(canvas, detected box, face index, eyes or None) where a box overlaps the pasted face by IoU >= 0.5."""
    found = []
    for canvas, truth, index in placed:
        faces = detector.faces(canvas) if hasattr(detector, "faces") else [(b, None) for b in detector.detect(canvas)]
        faces = [(box, eyes) for box, eyes in faces if iou(box, truth) >= 0.5]
        if faces:
            box, eyes = max(faces, key=lambda face: iou(face[0], truth))
            found.append((canvas, box, index, eyes))
    return found


def study(recognizer: EmotionRecognizer, faces: list[np.ndarray], labels: np.ndarray, name: str,
          backgrounds: tuple[str, ...] = BACKGROUNDS, tilt: float = 15) -> dict:
    """Direct accuracy, then per margin the detect-crop-classify accuracy; eye-levelling at the chosen margin."""
    direct = recognizer.classify(list(faces)).argmax(1) == labels
    detector = make_detector(name)
    placed = canvases(faces, backgrounds)
    found = detected(detector, placed)
    hit = np.array([index for _, _, index, _ in found], dtype=int)

    def accuracy(chosen: object, faces_found: list, level: bool = False) -> float:
        crops = [crop(c, b, chosen, eyes if level else None) for c, b, _, eyes in faces_found]
        indices = np.array([index for _, _, index, _ in faces_found], dtype=int)
        return float((recognizer.classify(crops).argmax(1) == labels[indices]).mean()) if crops else float("nan")

    rows = {}
    for margin in MARGINS:
        found_accuracy = accuracy(dataclasses.replace(detector, margin=margin), found)
        rows[margin] = {"found": found_accuracy, "all": found_accuracy * len(found) / len(placed)}
    direct_found = direct[hit].mean() if len(found) else float("nan")
    best = min(MARGINS, key=lambda m: abs(rows[m]["found"] - direct_found))
    offsets = {o: accuracy(dataclasses.replace(detector, margin=best, offset=o), found) for o in OFFSETS}
    offset = min(OFFSETS, key=lambda o: abs(offsets[o] - direct_found))
    result = {"detector": name, "direct": direct.mean(), "direct_found": direct_found, "placed": len(placed),
              "found": len(found), "margins": rows, "best": best, "offsets": offsets, "offset": offset}
    if hasattr(detector, "faces"):  # eye landmarks: levelling at the chosen framing, upright and tilted canvases
        chosen = dataclasses.replace(detector, margin=best, offset=offset)
        tilted = detected(detector, canvases(faces, backgrounds, tilt=tilt))
        result["levelling"] = {"upright": (accuracy(chosen, found), accuracy(chosen, found, True)),
                               f"tilted +-{tilt:g}": (accuracy(chosen, tilted), accuracy(chosen, tilted, True))}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--detectors", nargs="+", default=sorted(DETECTORS), choices=sorted(DETECTORS))
    parser.add_argument("--tilt", type=float, default=15.0, help="degrees, for the eye-levelling study")
    parser.add_argument("--backgrounds", nargs="+", default=list(BACKGROUNDS), choices=BACKGROUNDS)
    args = parser.parse_args(argv)
    split = load_fer2013(args.dataset, splits=("validation",))["validation"]
    split = split.shuffle(seed=0).select(range(min(args.samples, len(split))))
    faces = [np.asarray(image.convert("L")) for image in split["image"]]
    labels = np.asarray(split["label"])
    recognizer = EmotionRecognizer.from_pretrained(args.model)
    print(f"{len(faces)} validation faces x {len(SCALES)} scales x backgrounds {args.backgrounds}; runtime "
          f"{'onnxruntime' if recognizer.onnx_file else 'PyTorch'}")
    print("| detector | found | direct (all) | direct (found) | " + " | ".join(f"margin {m:g}" for m in MARGINS)
          + " | chosen margin |")
    print("|---|---|---|---|" + "---|" * len(MARGINS) + "---|")
    levelling, shifts = [], []
    for name in args.detectors:
        r = study(recognizer, faces, labels, name, tuple(args.backgrounds), args.tilt)
        cells = " | ".join(f"{r['margins'][m]['found']:.3f} ({r['margins'][m]['all']:.3f})" for m in MARGINS)
        print(f"| {name} | {r['found']}/{r['placed']} | {r['direct']:.3f} | {r['direct_found']:.3f} | {cells} | "
              f"{r['best']:g} |")
        shifts.append(f"| {name} | {r['best']:g} | " + " | ".join(f"{r['offsets'][o]:.3f}" for o in OFFSETS)
                      + f" | {r['offset']:g} |")
        levelling.extend(f"| {name} | {condition} | {plain:.3f} | {level:.3f} |" for condition, (plain, level) in
                         r.get("levelling", {}).items())
    print("\nOffset (the crop moved down by a fraction of its height) at the chosen margin, accuracy on the faces "
          "found:\n\n| detector | margin | " + " | ".join(f"offset {o:g}" for o in OFFSETS) + " | chosen offset |")
    print("|---|---|" + "---|" * len(OFFSETS) + "---|\n" + "\n".join(shifts))
    if levelling:
        print("\nEye-levelling at the chosen margin (accuracy on the faces found):\n")
        print("| detector | canvases | as detected | eyes levelled |\n|---|---|---|---|\n" + "\n".join(levelling))


if __name__ == "__main__":
    main()
