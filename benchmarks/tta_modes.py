"""Which test-time augmentation each mode of the app should serve: validation accuracy and milliseconds per face of
every TTA mode, on the int8 ONNX file and on PyTorch fp32, beside the no-TTA baseline of the same runtime.

Accuracy: fer_model.evaluation.evaluate_folder on the validation split (the test split stays for the reported
figures). Latency: EmotionRecognizer.classify on one 48x48 face (processor, views, forward, softmax), median of
--runs, on --threads threads. Then the choice per mode (photo, API, live, video) under its per-face budget.

    nice -n 10 python benchmarks/tta_modes.py --model ../shared/models/fer-vgg16 --dataset ../shared/fer2013
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed
from fer_model import EmotionRecognizer
from fer_model.image_processing import TTA_MODES

RUNTIMES = {"int8": "auto", "fp32": "none"}  # what EmotionRecognizer.from_pretrained(onnx=...) is given
# the most a mode may spend on one face: a photo or an API call answers in well under a second even with several
# faces; a live frame every 0.5 s and a video at 10 frames/s multiply the cost by every frame
BUDGET_MS = {"photo": 20.0, "api": 20.0, "live": 10.0, "video": 5.0}
MIN_GAIN = 0.002  # a TTA mode must raise validation accuracy by at least 0.2 point over the cheaper one


def accuracy(model: str, split: object, tta: str, onnx: str) -> float:
    from fer_model.evaluation import evaluate_folder

    return float(evaluate_folder(model, split, tta=tta, batch_size=256, onnx=onnx)["accuracy"])


def ms_per_face(model: str, runs: int) -> dict[tuple[str, str], float]:
    """Median ms of EmotionRecognizer.classify on one face per (runtime, TTA), the six measured in turn within each
    round (interleaved: on a shared CPU, a load change hits every mode alike and the ratios hold)."""
    recognizers = {(runtime, tta): EmotionRecognizer.from_pretrained(model, tta=tta, onnx=onnx)
                   for runtime, onnx in RUNTIMES.items() for tta in TTA_MODES}
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in recognizers}
    for round_ in range(runs + 1):  # round 0 warms up
        for key, recognizer in recognizers.items():
            start = time.perf_counter()
            recognizer.classify([face])
            if round_:
                times[key].append((time.perf_counter() - start) * 1e3)
    return {key: statistics.median(values) for key, values in times.items()}


def choose(rows: dict[tuple[str, str], dict[str, float]], runtime: str, budget_ms: float,
           none_ms: float | None = None) -> str:
    """The most accurate mode within the budget whose gain over the next cheaper accepted mode is >= MIN_GAIN.
    With `none_ms` (no-TTA ms per face on an idle CPU), a mode's cost is its ratio to no-TTA times that: on a
    shared CPU the ratios hold better than the milliseconds."""
    chosen = "none"
    for tta in TTA_MODES[1:]:  # in order of cost: flip, 10crop
        row = rows[(runtime, tta)]
        cost = row["ms"] if none_ms is None else none_ms * row["ms"] / rows[(runtime, "none")]["ms"]
        if cost <= budget_ms and row["accuracy"] - rows[(runtime, chosen)]["accuracy"] >= MIN_GAIN:
            chosen = tta
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "shared/models/fer-vgg16"))
    parser.add_argument("--dataset", default=str(Path(__file__).resolve().parents[2] / "shared/fer2013"))
    parser.add_argument("--max_samples", type=int, default=None, help="validation images (default: all)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--idle_none_ms", type=float, default=None, help="int8 no-TTA ms per face measured on an "
                        "idle CPU (benchmarks/inference.py): the choice scales it by each mode's measured ratio")
    parser.add_argument("--rows", default=None, help="a file ending with the JSON line this script printed: "
                        "reuse its accuracies, measure the latencies again")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rows:  # the accuracies of an earlier run (its JSON line), the latencies measured again
        line = [line for line in Path(args.rows).read_text().splitlines() if line.startswith('{"rows"')][-1]
        saved = json.loads(line)["rows"]
        accuracies, images = {tuple(key.split("/")): row["accuracy"] for key, row in saved.items()}, "(saved)"
    else:
        from fer_model.data import load_fer2013

        split = load_fer2013(args.dataset, splits=("validation",))["validation"]
        if args.max_samples:
            split = split.select(range(min(args.max_samples, len(split))))
        accuracies = {(runtime, tta): accuracy(args.model, split, tta, onnx)
                      for runtime, onnx in RUNTIMES.items() for tta in TTA_MODES}
        images = len(split)
    latencies = ms_per_face(args.model, args.runs)
    rows = {key: {"accuracy": accuracies[key], "ms": latencies[key]} for key in latencies}
    print(f"validation: {images} images; {args.threads} threads; median of {args.runs} interleaved runs per face")
    report(rows, args.idle_none_ms)


def report(rows: dict[tuple[str, str], dict[str, float]], idle_none_ms: float | None) -> None:
    print(f"{'runtime':8} {'tta':7} {'val acc %':>9} {'gain pt':>8} {'ms/face':>8} {'x none':>7}")
    for (runtime, tta), row in rows.items():
        base = rows[(runtime, "none")]
        print(f"{runtime:8} {tta:7} {100 * row['accuracy']:9.2f} {100 * (row['accuracy'] - base['accuracy']):+8.2f}"
              f" {row['ms']:8.2f} {row['ms'] / base['ms']:7.2f}")
    choices = {mode: choose(rows, "int8", budget, idle_none_ms) for mode, budget in BUDGET_MS.items()}
    basis = f"ratio x {idle_none_ms:g} ms idle" if idle_none_ms else "measured ms"
    print(f"default per mode (int8, {basis} against the budget in ms/face):",
          ", ".join(f"{mode} {tta} ({BUDGET_MS[mode]:g})" for mode, tta in choices.items()))
    print(json.dumps({"rows": {f"{r}/{t}": v for (r, t), v in rows.items()}, "choices": choices}))


if __name__ == "__main__":
    main()
