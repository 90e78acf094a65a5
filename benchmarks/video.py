"""Video analysis speed on this CPU: our video path (PyTorch and int8 ONNX) next to the fer package's Video.analyze,
on the same 640x360 clip, in one run.

The clip (made here from examples/*.jpg, like the tests' clips): 640x360, 25 frames/s, --seconds long, the
astronaut and Grace Hopper drifting across, Hopper entering and leaving. Every frame is analysed by every
runtime (ours with --fps 25, fer with frequency=1), each writing its annotated video (ours also the CSV, the
summary and the timeline PNG; fer its CSV); our default (10 analysed frames/s) is measured too. Model loading is
not timed; a 1 s warm-up clip runs first through each. Figures: analysed frames/s and seconds of video per
second of wall time, the ratio against fer's.

`fer` is a comparison only, never a dependency: it needs TensorFlow (and moviepy for Video), so it runs in a
subprocess with the interpreter given by --fer-python, as benchmarks/inference.py does:
    python -m venv /tmp/fervenv && /tmp/fervenv/bin/pip install fer "setuptools<81"
    python benchmarks/video.py --fer-python /tmp/fervenv/bin/python [--model ../shared/models/fer-vgg16]
Our int8 runtime is the model folder's model_int8.onnx (the released folder ships one); without --model, a
random-init model with an int8 export calibrated on random inputs (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from app_process import save_random_model  # benchmarks/app_process.py, beside this script
from timing import run_fer_script  # benchmarks/timing.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT.parent / "shared" / "models" / "fer-vgg16"
SIZE, FPS = (640, 360), 25


def make_clip(path: Path, seconds: float) -> Path:
    """The 640x360 clip (tests/helpers/video_clips.py: faces pasted from examples/*.jpg, H.264)."""
    sys.path.insert(0, str(ROOT))
    from tests.helpers.video_clips import moving_faces_clip

    return moving_faces_clip(path, size=SIZE, fps=FPS, seconds=seconds, sprite=150,
                             enter_leave=(seconds * 0.3, seconds * 0.7)).path


# ----------------------------------------------------------------------------- fer (subprocess)

def measure_fer(clip: str, warmup: str, outdir: str) -> dict[str, float]:
    """fer's Video.analyze on every frame, annotated video written, then its CSV; printed as JSON."""
    import os

    from fer.classes import Video  # fer 25.10.3's modules (its package root exports neither)
    from fer.fer import FER

    detector = FER()  # its defaults: OpenCV Haar cascade, its emotion classifier
    options = dict(display=False, frequency=1, save_frames=False, save_video=True, annotate_frames=True,
                   zip_images=False)
    Video(warmup, outdir=os.path.join(outdir, "warmup"), first_face_only=False).analyze(detector, **options)
    video = Video(clip, outdir=outdir, first_face_only=False)
    start = time.perf_counter()
    data = video.analyze(detector, **options)
    video.to_pandas(data).to_csv(os.path.join(outdir, "fer.csv"))
    wall = time.perf_counter() - start
    faces = sum(len([key for key in row if key.startswith("box")]) for row in data)
    return {"frames_analysed": len(data), "wall_s": wall, "faces": faces}


# ----------------------------------------------------------------------------- ours

def model_folder(model: str | None, tmp: Path) -> str:
    """--model, else a random-init model with an int8 export (random calibration) in a temporary folder."""
    return model or str(save_random_model(tmp / "random", int8=True))


def measure_ours(folder: str, onnx: str, clip: Path, warmup: Path, fps: float, out: Path) -> dict[str, float]:
    from fer_model import EmotionRecognizer
    from fer_model.video import analyze_video

    recognizer = EmotionRecognizer.from_pretrained(folder, onnx=onnx)
    analyze_video(warmup, out / "warmup", recognizer, fps=fps)
    start = time.perf_counter()
    summary = analyze_video(clip, out / "run", recognizer, fps=fps)
    wall = time.perf_counter() - start
    return {"frames_analysed": summary["frames_analysed"], "wall_s": wall,
            "faces": sum(face["frames_seen"] for face in summary["faces"]), "runtime": summary["runtime"]}


def print_table(results: dict[str, dict], seconds: float, fer: dict | None) -> None:
    print(f"{'runtime':<34}{'frames':>8}{'faces':>7}{'wall s':>9}{'frames/s':>10}{'video s/s':>11}{'vs fer':>8}")
    fer_fps = fer["frames_analysed"] / fer["wall_s"] if fer else float("nan")
    for name, figures in results.items():
        frames_per_s = figures["frames_analysed"] / figures["wall_s"]
        ratio = frames_per_s / fer_fps if "every frame" in name or name.startswith("fer") else float("nan")
        print(f"{name:<34}{figures['frames_analysed']:>8}{figures['faces']:>7}{figures['wall_s']:>9.2f}"
              f"{frames_per_s:>10.1f}{seconds / figures['wall_s']:>11.2f}{ratio:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(RELEASE) if (RELEASE / "config.json").is_file() else None,
                        help="model folder (default: ../shared/models/fer-vgg16 if present, else a random-init model)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of the 640x360 clip")
    parser.add_argument("--fer-python", default=sys.executable, help="interpreter that has `fer` installed")
    parser.add_argument("--fer-only", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fer_only:
        print(json.dumps(measure_fer(*args.fer_only)))
        return

    import torch

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip, warmup = make_clip(tmp / "clip.mp4", args.seconds), make_clip(tmp / "warmup.mp4", 1.0)
        folder = model_folder(args.model, tmp)
        results = {}
        runs = [("ours pytorch, every frame", "none", FPS), ("ours int8 onnx, every frame", "auto", FPS),
                ("ours int8 onnx, default 10/s", "auto", 10.0)]
        for name, onnx, fps in runs:
            results[name] = measure_ours(folder, onnx, clip, warmup, fps, tmp / name.replace(" ", "_"))
        fer_dir = tmp / "fer"
        fer_dir.mkdir()
        fer = run_fer_script(args.fer_python, __file__, [str(clip), str(warmup), str(fer_dir)], cwd=str(fer_dir))
        if fer:
            results["fer Video.analyze, every frame"] = fer
        print(f"clip: {SIZE[0]}x{SIZE[1]}, {FPS} frames/s, {args.seconds:g} s ({round(args.seconds * FPS)} frames); "
              f"torch threads={torch.get_num_threads()}; model={args.model or 'random init'}; "
              f"int8 runtime: {results['ours int8 onnx, every frame']['runtime']}")
        print_table(results, args.seconds, fer)


if __name__ == "__main__":
    main()
