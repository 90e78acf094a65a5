"""Which model the Space serves and how its header names it.

The model comes from --model, else FER_MODEL, else ../shared/models/fer-vgg16 when present, else the Hub model
(fer_model.model_source.resolve_model, as for every CLI command: offline, a Hub model not in the cache stops the app
at once with what was tried); it
runs on the folder's int8 ONNX file when it has one that belongs to its weights, like the CLI (`onnx_choice`:
--onnx FILE, --no-onnx or FER_ONNX=none for PyTorch). The header names it by its Hub id or its folder's name (never
a server path), with the test accuracy from the folder's metrics.json when it has one.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from fer_model import EmotionRecognizer
from fer_model.model_source import LOCAL_RELEASE, resolve_model
from fer_model.onnx_runtime import onnx_choice

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["LOCAL_RELEASE", "ROOT", "load_recognizer", "model_header", "model_title", "resolve_model_source"]


def resolve_model_source(cli_value: str | None = None) -> str:
    """fer_model.model_source.resolve_model, or exit saying what was tried (the app cannot start without a model)."""
    try:
        return resolve_model(cli_value)
    except OSError as error:
        sys.exit(f"app.py: cannot start without a model.\n{error}")


def model_title(source: str) -> str:
    """How the page names the model: a Hub id as is, a local folder by its name only (never a server path), a
    cached Hub snapshot (.../models--owner--name/snapshots/HASH) by its repo id."""
    path = Path(source)
    if path.exists() and path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.removeprefix("models--").replace("--", "/")
    return path.name if path.exists() else source


def reported_test_accuracy(source: str) -> float | None:
    """metrics.json's test accuracy (what train.py and `evaluate` write), from the folder or the Hub cache; None
    when there is none (offline, no file, another split, unreadable)."""
    from transformers.utils import cached_file

    try:
        path = cached_file(source, "metrics.json", _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
        metrics = json.loads(Path(path).read_text()) if path else {}
    except (OSError, ValueError):
        return None
    accuracy = metrics.get("accuracy") if isinstance(metrics, dict) and metrics.get("split") == "test" else None
    return float(accuracy) if isinstance(accuracy, (int, float)) and math.isfinite(accuracy) else None


def runtime_title(recognizer: EmotionRecognizer) -> str:
    """What runs the classifier, for the header: onnxruntime and the file's name, or PyTorch."""
    return f"onnxruntime (`{recognizer.onnx_file.name}`)" if recognizer.onnx_file else "PyTorch"


def model_header(source: str, recognizer: EmotionRecognizer) -> str:
    """ "Model: `fer-vgg16` (test accuracy 66.98 %), run by onnxruntime (`model_int8.onnx`)." """
    accuracy = reported_test_accuracy(source)
    score = f" (test accuracy {100 * accuracy:.2f} %)" if accuracy is not None else ""
    return f"Model: `{model_title(source)}`{score}, run by {runtime_title(recognizer)}."


def load_recognizer(source: str, tta: str = "none", onnx: str | None = None,
                    no_onnx: bool = False, detector: str | None = None) -> EmotionRecognizer:
    """The recognizer, or exit saying how to point the app at a model. The runtime: onnx_choice(onnx, no_onnx), so
    --onnx FILE, else FER_ONNX, else "auto" (the folder's model_int8.onnx when it belongs to its weights)."""
    try:
        return EmotionRecognizer.from_pretrained(source, tta=tta, onnx=onnx_choice(onnx, no_onnx), detector=detector)
    except (OSError, ValueError) as error:
        sys.exit(f"app.py: cannot start without a model.\n{error}\n"
                 f"Example: FER_MODEL=path/to/fer-vgg16 python app.py   (or: python app.py --model path/to/folder)")
