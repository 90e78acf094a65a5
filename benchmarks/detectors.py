"""Face detectors compared (fer_model.faces.DETECTORS, and benchmarks/detector_candidates.py where installed): recall
and precision at IoU >= 0.5, and ms per 640-px image, under four conditions: the original images, rotated by +30 and
-30 degrees, downscaled to half, darkened to 40 %; and the recall on heads turned 45 degrees or more.

    python benchmarks/fetch_afw.py      # AFW: 205 photos, 468 faces, into ~/.cache/fer-vgg16/afw
    python benchmarks/detectors.py --data ~/.cache/fer-vgg16/afw [--runs 3] [--limit N]

Data: `--data DIR` holding boxes.json, {"images": [{"file": "x.jpg", "boxes": [[x, y, w, h], ...],
"yaw_degrees": [...] (optional)}, ...]} with the files beside it (a public labelled set converted into that form,
kept out of git). Images are first brought to at most 1,280 px, as the recognizer's working copy is. A labelled face
smaller than the detectors' 48-px minimum is ignored: it counts neither as missed nor, when found, as a false
positive (WIDER FACE's "ignore" convention). Without `--data`: the built-in set,
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

from benchmarks.detector_candidates import available_candidates
from fer_model.faces import DETECTORS, Box
from fer_model.images import MAX_SIDE
from fer_model.tracking import iou
from tests.helpers.image_files import cartoon_face

MIN_FACE = 48  # the detectors' min_face_size: smaller labelled faces are ignored

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


def folder_set(folder: Path, limit: int | None = None) -> tuple[Labelled, list[list[float]]]:
    """The images (at most MAX_SIDE px, boxes scaled with them) and each face's yaw (NaN where not given)."""
    images, yaws = [], []
    for entry in json.loads((folder / "boxes.json").read_text())["images"][:limit]:
        image = Image.open(folder / entry["file"]).convert("RGB")
        scale = min(1.0, MAX_SIDE / max(image.size))
        if scale < 1.0:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        images.append((image, [tuple(round(v * scale) for v in box) for box in entry["boxes"]]))
        yaws.append(entry.get("yaw_degrees", [float("nan")] * len(entry["boxes"])))
    return images, yaws


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


def matches(found: list[Box], truth: list[Box], threshold: float = 0.5) -> list[tuple[int, int]]:
    """(found index, true index) pairs matched one-to-one at IoU >= threshold, best overlaps first."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, used_t, out = set(), set(), []
    for overlap, i, j in pairs:
        if overlap >= threshold and i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            out.append((i, j))
    return out


def score(detector: object, images: Labelled, yaws: list[list[float]] | None = None, threshold: float = 0.5,
          ) -> dict[str, float]:
    """Recall, precision (labelled faces under MIN_FACE ignored) and recall on heads turned >= 45 degrees."""
    hits = found = truth = turned = turned_hits = 0
    for index, (image, boxes) in enumerate(images):
        detected = detector.detect(np.asarray(image))
        paired = matches(detected, boxes, threshold)
        small = {j for j, box in enumerate(boxes) if min(box[2], box[3]) < MIN_FACE}
        hit_truth = {j for _, j in paired} - small
        hits, truth = hits + len(hit_truth), truth + len(boxes) - len(small)
        found += len(detected) - sum(1 for _, j in paired if j in small)
        yaw = yaws[index] if yaws else [float("nan")] * len(boxes)
        big_turns = {j for j in range(len(boxes)) if j not in small and abs(yaw[j]) >= 45}
        turned, turned_hits = turned + len(big_turns), turned_hits + len(big_turns & hit_truth)
    return {"recall": hits / max(truth, 1), "precision": hits / found if found else float("nan"),
            "faces": truth, "detections": found, "turned": turned_hits / turned if turned else float("nan")}


def ms_per_image(detector: object, images: Labelled, runs: int) -> float:
    """Median ms of detect() on each image resized to 640 px on its longest side, averaged over the images."""
    times = []
    for image, _ in images:
        scale = 640 / max(image.size)
        pixels = np.asarray(image.resize((round(image.width * scale), round(image.height * scale))))
        detector.detect(pixels)  # warm-up
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            detector.detect(pixels)
            samples.append(1000 * (time.perf_counter() - start))
        times.append(float(np.median(samples)))
    return float(np.mean(times))


def yaws_of(yaws: list[list[float]] | None, condition: str) -> list[list[float]] | None:
    """The faces' yaws in the order of conditions()[condition] (the rotated set has two copies of each image)."""
    if yaws is None or condition != "rotated +-30":
        return yaws
    return [faces for faces in yaws for _ in (30, -30)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder with boxes.json (default: the built-in set)")
    parser.add_argument("--limit", type=int, default=None, help="the first N images of --data only")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timing_images", type=int, default=30, help="images timed (the first N)")
    parser.add_argument("--detectors", nargs="+", default=None, help="names (default: all available, Haar first)")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU at which a detection matches a labelled face")
    args = parser.parse_args(argv)
    images, yaws = folder_set(args.data, args.limit) if args.data else (builtin_set(), None)
    everything = {**DETECTORS, **available_candidates()}
    names = args.detectors or ["haar"] + sorted(set(everything) - {"haar"})
    print(f"data: {args.data or 'built-in (examples/)'}: {len(images)} images, {sum(len(b) for _, b in images)} "
          f"faces; detectors: {names}; IoU >= {args.iou}")
    print("| detector | condition | recall | precision | faces | detections | turned >= 45 deg recall "
          "| ms / 640-px image | x Haar |")
    print("|---|---|---|---|---|---|---|---|---|")
    baseline, sets = None, conditions(images)  # the copies made once, for every detector
    for name in names:
        detector = everything[name]()
        ms = ms_per_image(detector, images[: args.timing_images], args.runs)
        baseline = baseline or ms  # the first detector, Haar unless --detectors says otherwise
        for condition, labelled in sets.items():
            s = score(detector, labelled, yaws_of(yaws, condition), args.iou)
            print(f"| {name} | {condition} | {s['recall']:.3f} | {s['precision']:.3f} | {s['faces']} | "
                  f"{s['detections']} | {s['turned']:.3f} | {ms:.1f} | {ms / baseline:.2f} |", flush=True)


if __name__ == "__main__":
    main()
