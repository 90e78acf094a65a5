"""CPU inference speed of FER-VGG16 next to the PyPI `fer` package (its default backend), in one run.

For each of our runtimes (PyTorch fp32 eager; onnxruntime fp32; onnxruntime int8) and for `fer`:
  - per_face_ms: the classifier alone on one face (median of --runs after warm-up),
  - batch64_faces_per_s: the classifier alone on 64 faces,
  - e2e_ms: image in memory -> faces + emotions (detection included), on the astronaut photo (1 face)
    and on a 2x2 tile of it (4 faces).
The last line is the summary for the runtime the Space serves (onnxruntime int8), against `fer`:
`per_face_ms=X batch64_faces_per_s=Y e2e_ms=Z fer_e2e_ms=W e2e_ratio=Z/W`.

`fer` is a comparison only, never a dependency. It needs TensorFlow, so it is run in a subprocess
with the interpreter given by --fer-python (default: this one). Install it in a separate venv:
    python -m venv /tmp/fervenv && /tmp/fervenv/bin/pip install fer "setuptools<81"
    python benchmarks/inference.py --fer-python /tmp/fervenv/bin/python
(fer 25.10.3 is imported as `from fer.fer import FER`.)

Speed does not depend on the weights: without --model a random-init model is used. With --model FOLDER
and --dataset SRC, int8 calibration uses real training faces and the FER2013 test accuracy of fp32 and
int8 is printed too (the int8 accuracy-drop check).

    python benchmarks/inference.py [--model FOLDER] [--dataset ../shared/fer2013] [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from timing import median_ms, run_fer_script  # benchmarks/timing.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"


def astronaut_and_tile() -> dict[str, "object"]:
    from PIL import Image

    face = Image.open(ASTRONAUT).convert("RGB")
    tile = Image.new("RGB", (2 * face.width, 2 * face.height))
    for x in (0, face.width):
        for y in (0, face.height):
            tile.paste(face, (x, y))
    return {"astronaut": face, "tile2x2": tile}


# ----------------------------------------------------------------------------- fer (subprocess)

def measure_fer(runs: int) -> dict[str, float]:
    """The `fer` package's figures; runs in its own interpreter (TensorFlow), printing JSON."""
    import numpy as np
    from fer.fer import FER

    detector = FER()  # its defaults: Haar cascade, TFLite classifier
    one, batch = np.zeros((1, 64, 64), np.float32), np.zeros((64, 64, 64), np.float32)
    figures = {
        "per_face_ms": median_ms(lambda: detector._classify_emotions(one), runs),
        "batch64_faces_per_s": 64e3 / median_ms(lambda: detector._classify_emotions(batch), max(5, runs // 5)),
    }
    for name, image in astronaut_and_tile().items():
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        faces = len(detector.detect_emotions(bgr))
        figures[f"e2e_ms_{name}"] = median_ms(lambda bgr=bgr: detector.detect_emotions(bgr), runs)
        figures[f"detect_ms_{name}"] = median_ms(lambda bgr=bgr: detector.find_faces(bgr), runs)
        figures[f"faces_{name}"] = faces
    return figures


# ----------------------------------------------------------------------------- ours

def measure_ours(recognizer: "object", runtime: Callable, runs: int) -> dict[str, float]:
    import torch

    one, batch = torch.randn(1, 3, 48, 48), torch.randn(64, 3, 48, 48)
    with torch.inference_mode():
        figures = {
            "per_face_ms": median_ms(lambda: runtime(one), runs),
            "batch64_faces_per_s": 64e3 / median_ms(lambda: runtime(batch), max(5, runs // 5)),
        }
    recognizer.runtime = runtime
    for name, image in astronaut_and_tile().items():
        figures[f"faces_{name}"] = len(recognizer.recognize(image)["faces"])
        figures[f"e2e_ms_{name}"] = median_ms(lambda image=image: recognizer.recognize(image), runs)
        working, _ = recognizer.working_image(image)
        figures[f"detect_ms_{name}"] = median_ms(lambda working=working: recognizer.detector.detect(working), runs)
    return figures


def calibration(dataset: str | None, config: "object") -> "object":
    """Real training faces when a dataset is given (what the release uses), else random inputs."""
    import torch

    from fer_model.configuration import input_size

    if dataset:
        from fer_model.__main__ import calibration_batch
        from fer_model.onnx_runtime import CALIBRATION_SAMPLES

        return calibration_batch(dataset, config, CALIBRATION_SAMPLES)
    side = input_size(config)  # the crop a crop-trained model takes
    return torch.randn(256, 3, side, side).numpy()


def accuracy(model_dir: str, dataset: str, onnx: Path | None) -> float:
    from fer_model.data import load_fer2013
    from fer_model.evaluation import evaluate_folder

    test = load_fer2013(dataset, splits=("test",))["test"]
    return evaluate_folder(model_dir, test, onnx=onnx, device="cpu")["accuracy"]


def print_table(results: dict[str, dict[str, float]]) -> None:
    columns = ["per_face_ms", "batch64_faces_per_s", "e2e_ms_astronaut", "detect_ms_astronaut", "faces_astronaut",
               "e2e_ms_tile2x2", "detect_ms_tile2x2", "faces_tile2x2"]
    print(f"{'runtime':<24}" + "".join(f"{c:>22}" for c in columns))
    for name, figures in results.items():
        print(f"{name:<24}" + "".join(f"{figures.get(c, float('nan')):>22.2f}" for c in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: a random-init model)")
    parser.add_argument("--dataset", default=None, help="FER2013 source: real int8 calibration + accuracy check")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--fer-python", default=sys.executable, help="interpreter that has `fer` installed")
    parser.add_argument("--fer-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fer_only:
        print(json.dumps(measure_fer(args.runs)))
        return

    import torch

    sys.path.insert(0, str(ROOT))  # run from a checkout, no install needed
    from app_process import save_random_model  # benchmarks/app_process.py, beside this script

    from fer_model import EmotionRecognizer
    from fer_model.onnx_runtime import OnnxClassifier, export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or str(save_random_model(Path(tmp) / "random"))
        recognizer = EmotionRecognizer.from_pretrained(model_dir, onnx=None)  # PyTorch: the baseline
        model = recognizer.model
        fp32 = export_onnx(model, f"{tmp}/fp32.onnx")
        int8 = export_onnx(model, f"{tmp}/int8.onnx", calibration=calibration(args.dataset, model.config))
        runtimes = {
            "pytorch fp32 (eager)": recognizer.runtime,
            "onnxruntime fp32": OnnxClassifier(fp32),
            "onnxruntime int8": OnnxClassifier(int8),
        }
        results = {name: measure_ours(recognizer, runtime, args.runs) for name, runtime in runtimes.items()}
        fer = run_fer_script(args.fer_python, __file__, ["--runs", str(args.runs)])
        if fer:
            results["fer 25.x (TFLite)"] = fer
        print(f"threads={torch.get_num_threads()} runs={args.runs} model={args.model or 'random init'}")
        print_table(results)
        if args.model and args.dataset:
            fp32_acc, int8_acc = accuracy(model_dir, args.dataset, None), accuracy(model_dir, args.dataset, int8)
            print(f"FER2013 test accuracy: pytorch fp32 {fp32_acc:.4f}  onnx int8 {int8_acc:.4f}  "
                  f"drop {100 * (fp32_acc - int8_acc):.2f} points")

    served = results["onnxruntime int8"]
    ours_e2e, baseline = served["e2e_ms_astronaut"], results["pytorch fp32 (eager)"]
    print(f"int8 vs pytorch fp32: per-face {baseline['per_face_ms'] / served['per_face_ms']:.2f}x faster, "
          f"batch-64 {served['batch64_faces_per_s'] / baseline['batch64_faces_per_s']:.2f}x")
    fer_e2e = fer["e2e_ms_astronaut"] if fer else float("nan")
    print(f"per_face_ms={served['per_face_ms']:.2f} batch64_faces_per_s={served['batch64_faces_per_s']:.0f} "
          f"e2e_ms={ours_e2e:.1f} fer_e2e_ms={fer_e2e:.1f} e2e_ratio={ours_e2e / fer_e2e:.2f}")


if __name__ == "__main__":
    main()
