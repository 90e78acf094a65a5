"""Folder prediction speed (issue 13, point 6): `python -m fer_model predict FOLDER` against the ways a user
would otherwise run a folder, in one run, for PyTorch and the int8 ONNX file the CLI serves by default.

The folder: --images JPEGs made from examples/*.jpg (each photo, mirrored, and 2x2 tiles of it: 1 to 8 faces,
or none), written to a temporary folder. Figures (images/s, wall clock, everything included):
  - folder CLI: ONE `python -m fer_model predict FOLDER` call (interpreter start and model load included), its
    faces batched across images (fer_model/batch_predict.py);
  - per-image CLI: one `python -m fer_model predict IMAGE` call per image, as a shell loop over the files would
    run it; measured on the first --cli-calls images (each call costs the same start-up), images/s = calls / s;
  - in-process: the model loaded once, `recognize_many` over the folder (what the folder CLI runs) against a
    loop of `recognize()` per image (one forward per image), both after a warm-up pass, the timed passes
    interleaved (median of --repeats).
The ratios are folder CLI / per-image CLI and recognize_many / recognize() loop. The folder CLI's results are
checked against the recognize() loop's (same boxes and labels).

Speed does not depend on the weights: without --model a random-init model is used; int8 is calibrated on
random inputs unless --dataset gives real training faces.

    python benchmarks/folder_predict.py [--images 64] [--cli-calls 8] [--model FOLDER] [--dataset SRC]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app_process import save_random_model  # benchmarks/app_process.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = {"pytorch fp32": ["--no-onnx"], "onnxruntime int8": []}  # int8: the folder's model_int8.onnx


def make_folder(folder: Path, count: int) -> list[Path]:
    """`count` JPEGs cycling through examples/*.jpg, mirrored and tiled 2x2 (sorted names: the CLI's order)."""
    from PIL import Image, ImageOps

    variants = []
    for path in sorted((ROOT / "examples").glob("*.jpg")):
        photo = Image.open(path).convert("RGB")
        tile = Image.new("RGB", (2 * photo.width, 2 * photo.height))
        for x in (0, photo.width):
            for y in (0, photo.height):
                tile.paste(photo, (x, y))
        variants += [(path.stem, photo), (f"{path.stem}-mirrored", ImageOps.mirror(photo)), (f"{path.stem}-tile", tile)]
    folder.mkdir(parents=True)
    files = []
    for index in range(count):
        name, image = variants[index % len(variants)]
        files.append(folder / f"{index:03d}-{name}.jpg")
        image.save(files[-1], quality=90)
    return files


def model_folder(target: Path, source: str | None, dataset: str | None) -> Path:
    """A model folder with a fingerprinted model_int8.onnx: --model's weights (or random-init), exported here."""
    import torch

    from fer_model.configuration import input_size
    from fer_model.loading import load_model
    from fer_model.onnx_runtime import CALIBRATION_SAMPLES, INT8_FILENAME, export_onnx

    if not source:
        return save_random_model(target, int8=True)
    model, processor = load_model(source)
    model.save_pretrained(target)
    processor.save_pretrained(target)
    if dataset:
        from fer_model.__main__ import calibration_batch

        faces = calibration_batch(dataset, model.config, CALIBRATION_SAMPLES)
    else:
        side = input_size(model.config)  # a crop-trained model takes its crop
        faces = torch.rand(256, 3, side, side).numpy()
    export_onnx(model, target / INT8_FILENAME, calibration=faces)
    return target


def cli(arguments: list[str]) -> tuple[float, str]:
    """Seconds of one `python -m fer_model ...` call (from the checkout, offline) and its stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("FER_ONNX", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fer_model", *arguments], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"python -m fer_model {' '.join(arguments)} failed: {done.stderr[-2000:]}")
    return seconds, done.stdout


def in_process(model: Path, files: list[Path], options: list[str], repeats: int) -> dict[str, object]:
    """recognize_many over the folder and a recognize() loop: images/s (median of `repeats`) and the results."""
    from fer_model import EmotionRecognizer
    from fer_model.images import load_image

    recognizer = EmotionRecognizer.from_pretrained(model, onnx="none" if "--no-onnx" in options else "auto")

    def loop() -> list[dict]:
        return [recognizer.recognize(load_image(path)) for path in files]

    def batched() -> list[dict]:
        return list(recognizer.recognize_many(load_image(path) for path in files))

    figures: dict[str, object] = {"runtime": "onnxruntime" if hasattr(recognizer.runtime, "session") else "PyTorch"}
    runs = {"loop": loop, "batched": batched}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():
        figures[f"{name}_results"] = run()  # warm-up (thread pools, caches), and the results
    for _ in range(repeats):  # interleaved, so a burst of load elsewhere hits both alike
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    for name in runs:
        figures[f"{name}_images_per_s"] = len(files) / statistics.median(times[name])
    return figures


def same_results(lines: str, results: list[dict], files: list[Path]) -> bool:
    """The folder CLI's JSON lines against the recognize() loop: files, boxes and labels."""
    cli_results = [json.loads(line) for line in lines.splitlines()]
    return [r["file"] for r in cli_results] == [str(path) for path in files] and all(
        [(f["box"], f["label"]) for f in a["faces"]] == [(f["box"], f["label"]) for f in b["faces"]]
        for a, b in zip(cli_results, results, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="images in the folder")
    parser.add_argument("--cli-calls", type=int, default=8, help="per-image CLI calls timed (the first N images)")
    parser.add_argument("--repeats", type=int, default=5, help="timed in-process passes (median)")
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: random init)")
    parser.add_argument("--dataset", default=None, help="FER2013 source: real training faces calibrate int8")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # run from a checkout, no install needed
    import torch

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        files = make_folder(Path(tmp) / "photos", args.images)
        model = model_folder(Path(tmp) / "model", args.model, args.dataset)
        rows = {}
        for name, options in RUNTIMES.items():
            folder_s, lines = cli(["predict", str(Path(tmp) / "photos"), "--model", str(model), *options])
            calls_s = sum(cli(["predict", str(path), "--model", str(model), *options])[0]
                          for path in files[: args.cli_calls])
            figures = in_process(model, files, options, args.repeats)
            faces = sum(len(r["faces"]) for r in figures["batched_results"] if r["face_found"])
            rows[name] = {"folder_cli": len(files) / folder_s, "per_image_cli": args.cli_calls / calls_s,
                          "batched": figures["batched_images_per_s"], "loop": figures["loop_images_per_s"],
                          "served_by": figures["runtime"], "faces": faces, "folder_cli_s": folder_s,
                          "same": same_results(lines, figures["loop_results"], files)}
        shutil.rmtree(Path(tmp) / "photos")
    print(f"threads={torch.get_num_threads()} images={args.images} cli_calls={args.cli_calls} "
          f"repeats={args.repeats} model={args.model or 'random init'} load average {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f} (other processes share the CPU when it exceeds the threads)")
    header = ("runtime", "folder CLI img/s", "per-image CLI img/s", "ratio", "recognize_many img/s",
              "recognize() loop img/s", "ratio", "faces", "same results")
    print(" | ".join(header))
    for name, row in rows.items():
        print(" | ".join([f"{name} ({row['served_by']})", f"{row['folder_cli']:.1f} ({row['folder_cli_s']:.1f} s)",
                          f"{row['per_image_cli']:.2f}", f"{row['folder_cli'] / row['per_image_cli']:.1f}x",
                          f"{row['batched']:.1f}", f"{row['loop']:.1f}", f"{row['batched'] / row['loop']:.2f}x",
                          str(row["faces"]), "yes" if row["same"] else "NO"]))


if __name__ == "__main__":
    main()
