"""End-to-end CPU latency of the app's path (file -> load_image -> EmotionRecognizer.recognize) on real photos.

Prints median milliseconds per image, split into decode / detection / model, for the astronaut photo (1 face)
and a 2x2 tile of it (4 faces), next to baselines measured in the same run:
  - detection on the full-resolution image instead of the 640 px copy (the detector's detection_size),
  - the naive per-face loop (one model forward per face) instead of one batch for all faces,
and, unless --no-http, the same request through a launched app with gradio_client (upload + queue + JSON).
Weights do not change speed: a random-init model is used unless --model names a folder.

    python benchmarks/app_latency.py [--runs 20] [--threads N] [--model FOLDER] [--no-http] [--detector NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import median_ms  # benchmarks/timing.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout (fer_model, app), no install
from fer_model import EmotionRecognizer, FerConfig, FerForImageClassification, FerImageProcessor
from fer_model.faces import DETECTORS, Detector, make_detector
from fer_model.images import load_image

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"




def make_recognizer(model: str | None, detector: Detector | None = None) -> EmotionRecognizer:
    if model:
        return EmotionRecognizer.from_pretrained(model, detector=detector)
    config = FerConfig()
    return EmotionRecognizer(FerForImageClassification(config).eval(), FerImageProcessor.from_model_config(config),
                             detector=detector)


def per_face_loop(recognizer: EmotionRecognizer, crops: list[np.ndarray]) -> None:
    """The baseline: one forward per face."""
    for crop in crops:
        recognizer.classify([crop])


def measure(recognizer: EmotionRecognizer, full_res: EmotionRecognizer, path: Path, runs: int) -> dict[str, float]:
    image = load_image(path)
    working, _ = recognizer.working_image(image)
    boxes = recognizer.detector.detect(working)
    crops = [working[y : y + h, x : x + w]
             for x, y, w, h in (recognizer.detector.expand(b, working.shape) for b in boxes)]
    return {
        "faces": len(boxes),
        "end_to_end": median_ms(lambda: recognizer.recognize(load_image(path)), runs),
        "decode": median_ms(lambda: load_image(path), runs),
        "detection": median_ms(lambda: recognizer.detector.detect(recognizer.working_image(image)[0]), runs),
        "detection_full_res": median_ms(lambda: full_res.detector.detect(full_res.working_image(image)[0]), runs),
        "model_batched": median_ms(lambda: recognizer.classify(crops), runs),
        "model_per_face": median_ms(lambda: per_face_loop(recognizer, crops), runs),
    }


def http_ms(recognizer: EmotionRecognizer, paths: dict[str, Path], runs: int) -> dict[str, float]:
    """Median time of client.predict(handle_file(path)) against the app launched on localhost."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client, handle_file

    import app

    demo = app.build_demo(recognizer, "benchmark")
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **app.LAUNCH_OPTIONS)
    try:
        client = Client(demo.local_url, verbose=False)
        return {name: median_ms(lambda p=path: client.predict(handle_file(p), api_name="/predict"), runs)
                for name, path in paths.items()}
    finally:
        demo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--model", default=None, help="model folder (default: random init, same speed)")
    parser.add_argument("--no-http", action="store_true", help="skip the gradio_client round trip")
    parser.add_argument("--detector", default=None, choices=sorted(DETECTORS), help="default: the recognizer's")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    detector = make_detector(args.detector)
    recognizer = make_recognizer(args.model, detector)
    full_res = make_recognizer(args.model, dataclasses.replace(detector, detection_size=100_000))
    with tempfile.TemporaryDirectory() as folder:
        tile = Path(folder) / "astronaut_2x2.jpg"
        photo = Image.open(ASTRONAUT)
        grid = Image.new("RGB", (photo.width * 2, photo.height * 2))
        for x in (0, photo.width):
            for y in (0, photo.height):
                grid.paste(photo, (x, y))
        grid.save(tile, quality=90)
        paths = {"astronaut 512x512": ASTRONAUT, "2x2 tile 1024x1024": tile}
        rows = {name: measure(recognizer, full_res, path, args.runs) for name, path in paths.items()}
        http = {} if args.no_http else http_ms(recognizer, paths, args.runs)

    print(f"threads={args.threads} runs={args.runs} torch={torch.__version__} "
          f"detector: {detector.name} on a {detector.detection_size} px copy, model: {args.model or 'random init'}")
    columns = ["faces", "end_to_end", "decode", "detection", "detection_full_res", "model_batched", "model_per_face"]
    print(f"{'image':<22}" + "".join(f"{c:>20}" for c in columns))
    for name, row in rows.items():
        print(f"{name:<22}" + "".join(f"{row[c]:>20.1f}" if c != "faces" else f"{row[c]:>20d}" for c in columns))
    for name, row in rows.items():
        print(f"{name}: end_to_end_ms={row['end_to_end']:.1f} "
              f"detection_speedup_vs_full_res={row['detection_full_res'] / row['detection']:.2f}x "
              f"batched_speedup_vs_per_face={row['model_per_face'] / row['model_batched']:.2f}x"
              + (f" http_predict_ms={http[name]:.1f}" if http else ""))


if __name__ == "__main__":
    main()
