"""Which model the Space serves and how its header names it.

The model comes from --model, else FER_MODEL, else ../shared/models/fer-vgg16 when present, else the Hub model
(fer_model.model_source.resolve_model, as for every CLI command: offline, a Hub model not in the cache stops the app
at once with what was tried); it
runs on the folder's int8 ONNX file when it has one that belongs to its weights, like the CLI (`onnx_choice`:
--onnx FILE, --no-onnx or FER_ONNX=none for PyTorch). The header names it by its Hub id or its folder's name (never
a server path); space/header.py writes the rest of it.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from fer_model import EmotionRecognizer
from fer_model.model_source import LOCAL_RELEASE, resolve_model
from fer_model.onnx_runtime import OnnxFileWarning, onnx_choice

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["LOCAL_RELEASE", "ROOT", "load_recognizer", "model_title", "resolve_model_source"]


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


def load_recognizer(source: str, tta: str = "none", onnx: str | None = None,
                    no_onnx: bool = False, detector: str | None = None) -> EmotionRecognizer:
    """The recognizer, or exit saying how to point the app at a model. The runtime: onnx_choice(onnx, no_onnx), so
    --onnx FILE, else FER_ONNX, else "auto" (the folder's model_int8.onnx when it belongs to its weights)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OnnxFileWarning)
            recognizer = EmotionRecognizer.from_pretrained(source, tta=tta, onnx=onnx_choice(onnx, no_onnx),
                                                           detector=detector)
    except (OSError, ValueError) as error:
        sys.exit(f"app.py: cannot start without a model.\n{error}\n"
                 f"Example: FER_MODEL=path/to/fer-vgg16 python app.py   (or: python app.py --model path/to/folder)")
    for warning in caught:  # the ONNX file's warning as one line naming no server path; others as Python shows them
        if isinstance(warning.message, OnnxFileWarning):
            print(f"app.py: warning: {warning.message.summary}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return recognizer
