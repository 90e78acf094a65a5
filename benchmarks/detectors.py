"""Face detectors compared (fer_model.faces.DETECTORS): recall and precision at IoU >= 0.5, and ms per 640-px image,
under four conditions: the original images, rotated by +30 and -30 degrees, downscaled to half, darkened to 40 %.

    python benchmarks/detectors.py [--data DIR] [--runs 5]

Data: `--data DIR` holding boxes.json, {"images": [{"file": "x.jpg", "boxes": [[x, y, w, h], ...]}, ...]} with the
files beside it (a public labelled set converted into that form, kept out of git). Without it: the built-in set,
made here from the public-domain photos in examples/ (faces boxed by hand: HAND_BOXES), each also pasted at two
sizes onto the cat photo, plus three images without a face (the cat, a blank image, a drawn smiley) for false
positives. It is small (9 faces, 12 images): a check of the conditions, not a benchmark of record.
Timing: the median of `--runs` detect() calls per image at 640 px on its longest side, with Haar's in the same
run as the baseline (the ratio is what to compare under a shared CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_model.faces import DETECTORS, Box, make_detector
from fer_model.tracking import iou
from tests.helpers.image_files import cartoon_face

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# faces boxed by hand (x, y, w, h): the frontal faces as the eye sees them, the cameraman's turned head included
HAND_BOXES = {"astronaut.jpg": [(175, 66, 98, 98)], "grace_hopper.jpg": [(143, 98, 236, 236)],
              "cameraman.jpg": [(178, 95, 92, 100)]}
Labelled = list[tuple[Image.Image, list[Box]]]


def builtin_set() -> Labelled:
    """The example photos with their hand boxes, each pasted at 2 sizes onto the cat photo, and 3 without faces."""
    images: Labelled = []
    cat = Image.open(EXAMPLES / "cat.jpg").convert("RGB").resize((900, 600))
    for name, boxes in HAND_BOXES.items():
        photo = Image.open(EXAMPLES / name).convert("RGB")
        images.append((photo, boxes))
        for height, x in ((300, 40), (450, 420)):
            scale = height / photo.height
            canvas = cat.copy()
            canvas.paste(photo.resize((round(photo.width * scale), height)), (x, 600 - height))
            images.append((canvas, [(round(bx * scale) + x, round(by * scale) + 600 - height, round(bw * scale),
                                      round(bh * scale)) for bx, by, bw, bh in boxes]))
    images.append((Image.new("RGB", (640, 480), (128, 128, 128)), []))
    images.append((cartoon_face(), []))
    images.append((Image.open(EXAMPLES / "cat.jpg").convert("RGB"), []))
    return images


def folder_set(folder: Path) -> Labelled:
    entries = json.loads((folder / "boxes.json").read_text())["images"]
    return [(Image.open(folder / e["file"]).convert("RGB"), [tuple(b) for b in e["boxes"]]) for e in entries]


def rotated(image: Image.Image, boxes: list[Box], degrees: float) -> tuple[Image.Image, list[Box]]:
    """The image turned `degrees` counter-clockwise (canvas grown to fit); each box keeps its size, its centre moved."""
    turned = image.rotate(degrees, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    cx, cy, ncx, ncy = image.width / 2, image.height / 2, turned.width / 2, turned.height / 2
    a = math.radians(degrees)
    moved = []
    for x, y, w, h in boxes:
        dx, dy = x + w / 2 - cx, y + h / 2 - cy
        bx, by = ncx + dx * math.cos(a) + dy * math.sin(a), ncy - dx * math.sin(a) + dy * math.cos(a)
        moved.append((round(bx - w / 2), round(by - h / 2), w, h))
    return turned, moved


def conditions(images: Labelled) -> dict[str, Labelled]:
    half = [(im.resize((im.width // 2, im.height // 2)), [tuple(v // 2 for v in b) for b in boxes])
            for im, boxes in images]
    dark = [(Image.eval(im, lambda v: int(v * 0.4)), boxes) for im, boxes in images]
    turned = [rotated(im, boxes, d) for im, boxes in images for d in (30, -30)]
    return {"original": images, "rotated +-30": turned, "downscaled 1/2": half, "darkened 40 %": dark}


def matched(found: list[Box], truth: list[Box], threshold: float = 0.5) -> int:
    """Found boxes matched one-to-one to true ones at IoU >= threshold, best overlaps first."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, used_t = set(), set()
    for overlap, i, j in pairs:
        if overlap >= threshold and i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
    return len(used_f)


def score(detector: object, images: Labelled) -> dict[str, float]:
    hits = found = truth = 0
    for image, boxes in images:
        detected = detector.detect(np.asarray(image.convert("L")))
        hits, found, truth = hits + matched(detected, boxes), found + len(detected), truth + len(boxes)
    return {"recall": hits / max(truth, 1), "precision": hits / found if found else float("nan"),
            "faces": truth, "detections": found}


def ms_per_image(detector: object, images: Labelled, runs: int) -> float:
    """Median ms of detect() on each image resized to 640 px on its longest side, averaged over the images."""
    times = []
    for image, _ in images:
        scale = 640 / max(image.size)
        gray = np.asarray(image.resize((round(image.width * scale), round(image.height * scale))).convert("L"))
        detector.detect(gray)  # warm-up
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            detector.detect(gray)
            samples.append(1000 * (time.perf_counter() - start))
        times.append(float(np.median(samples)))
    return float(np.mean(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder with boxes.json (default: the built-in set)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    images = folder_set(args.data) if args.data else builtin_set()
    sets = conditions(images)
    print(f"data: {args.data or 'built-in (examples/)'}: {len(images)} images, "
          f"{sum(len(b) for _, b in images)} faces")
    print("| detector | condition | recall | precision | faces | detections | ms / 640-px image | x Haar |")
    print("|---|---|---|---|---|---|---|---|")
    baseline = None
    for name in sorted(DETECTORS):
        detector = make_detector(name)
        ms = ms_per_image(detector, images, args.runs)
        baseline = baseline or ms  # "haar" sorts first
        for condition, labelled in sets.items():
            s = score(detector, labelled)
            print(f"| {name} | {condition} | {s['recall']:.2f} | {s['precision']:.2f} | {s['faces']} | "
                  f"{s['detections']} | {ms:.1f} | {ms / baseline:.2f} |")


if __name__ == "__main__":
    main()
