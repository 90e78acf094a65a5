"""Command line: `python -m fer_model predict IMG... [--model X]` and `python -m fer_model evaluate ...`."""

from __future__ import annotations

import argparse
import json
import sys

from .loading import DEFAULT_MODEL_ID
from .tta import TTA_MODES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer_model", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="faces and emotions in images, one JSON line per image")
    predict.add_argument("images", nargs="+", help="image files")
    predict.add_argument("--model", default=DEFAULT_MODEL_ID, help="Hub id or local folder")
    predict.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation")

    evaluate = commands.add_parser("evaluate", help="accuracy, macro-F1 and per-class figures as JSON")
    evaluate.add_argument("--model", default=DEFAULT_MODEL_ID, help="Hub id or local folder")
    evaluate.add_argument("--dataset", required=True, help="FER2013 source (see fer_model.data.load_fer2013)")
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"))
    evaluate.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation")
    evaluate.add_argument("--batch_size", type=int, default=256)
    evaluate.add_argument("--max_samples", type=int, default=None, help="evaluate the first N rows only")
    return parser


def run_predict(args: argparse.Namespace) -> int:
    """Print one JSON object per image; unreadable files are reported on stderr and give exit code 2.

    A model that cannot be loaded is reported on stderr (with how to point at another) and gives exit code 1.
    """
    from .images import ImageLoadError, load_image
    from .recognizer import EmotionRecognizer

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # keep stderr for our messages
    try:
        recognizer = EmotionRecognizer.from_pretrained(args.model, tta=args.tta)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    status = 0
    for path in args.images:
        try:
            image = load_image(path)
        except ImageLoadError as error:
            print(f"{path}: {error}", file=sys.stderr)
            status = 2
            continue
        print(json.dumps({"file": path, **recognizer.recognize(image)}))
    return status


def run_evaluate(args: argparse.Namespace) -> int:
    from .data import load_fer2013
    from .evaluation import evaluate_folder

    split = load_fer2013(args.dataset)[args.split]
    if args.max_samples is not None:
        split = split.select(range(min(args.max_samples, len(split))))
    metrics = evaluate_folder(args.model, split, tta=args.tta, batch_size=args.batch_size)
    print(json.dumps(metrics, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_predict(args) if args.command == "predict" else run_evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
