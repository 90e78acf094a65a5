"""Does the crop the classifier sees match FER2013's framing? FER2013 validation faces pasted into larger canvases
(two scales; backgrounds: flat grey, noise, or the face's own borders mirrored outwards, which gives the detector
no hard edge at the crop's border), found by each detector, cropped with its box grown by a margin, classified, against
the accuracy of the original crops (direct). The margin is chosen on validation: the one whose detect-crop-classify
accuracy on the detected faces comes closest to the direct accuracy on the same faces.

    nice -n 10 python benchmarks/framing.py --model ../shared/models/fer-vgg16 --dataset ../shared/fer2013 \
        [--samples 400] [--detectors haar haar-profile] [--backgrounds grey noise reflect]

Haar gives no eye landmarks, so no eye-levelling is tried. Accuracy "all" counts a face the detector missed as
wrong; "found" is over the faces it found, beside the direct accuracy on those same faces.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_model import EmotionRecognizer
from fer_model.data import load_fer2013
from fer_model.faces import DETECTORS, make_detector
from fer_model.tracking import iou

MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
SCALES = (2, 3)  # the 48-px face pasted at 96 and 144 px
CANVAS = 320
BACKGROUNDS = ("grey", "noise", "reflect")


def canvases(faces: list[np.ndarray], backgrounds: tuple[str, ...] = BACKGROUNDS, seed: int = 0,
             ) -> list[tuple[np.ndarray, tuple[int, int, int, int], int]]:
    """(grey canvas, where the face was pasted, face index) for every face x scale x background."""
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
                out.append((canvas, (x, y, side, side), index))
    return out


def crop(canvas: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    return canvas[max(0, y - dy) : y + h + dy, max(0, x - dx) : x + w + dx]


def study(recognizer: EmotionRecognizer, faces: list[np.ndarray], labels: np.ndarray, name: str,
          backgrounds: tuple[str, ...] = BACKGROUNDS) -> dict:
    direct = recognizer.classify(list(faces)).argmax(1) == labels
    detector = make_detector(name)
    found = []  # (canvas, detected box, face index) where a box overlaps the pasted face by IoU >= 0.5
    placed = canvases(faces, backgrounds)
    for canvas, truth, index in placed:
        boxes = [b for b in detector.detect(canvas) if iou(b, truth) >= 0.5]
        if boxes:
            found.append((canvas, max(boxes, key=lambda b: iou(b, truth)), index))
    hit = np.array([index for _, _, index in found], dtype=int)
    rows = {}
    for margin in MARGINS:
        correct = recognizer.classify([crop(c, b, margin) for c, b, _ in found]).argmax(1) == labels[hit]
        rows[margin] = {"all": correct.sum() / len(placed), "found": correct.mean() if len(found) else float("nan")}
    direct_found = direct[hit].mean() if len(found) else float("nan")
    best = min(MARGINS, key=lambda m: abs(rows[m]["found"] - direct_found))
    return {"detector": name, "direct": direct.mean(), "direct_found": direct_found, "placed": len(placed),
            "found": len(found), "margins": rows, "best": best}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--detectors", nargs="+", default=sorted(DETECTORS), choices=sorted(DETECTORS))
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
    for name in args.detectors:
        r = study(recognizer, faces, labels, name, tuple(args.backgrounds))
        cells = " | ".join(f"{r['margins'][m]['found']:.3f} ({r['margins'][m]['all']:.3f})" for m in MARGINS)
        print(f"| {name} | {r['found']}/{r['placed']} | {r['direct']:.3f} | {r['direct_found']:.3f} | {cells} | "
              f"{r['best']:g} |")


if __name__ == "__main__":
    main()
