"""Which model the Space serves and how its header names it.

The model comes from --model, else FER_MODEL, else ../shared/models/fer-vgg16 when present, else the Hub model; it
runs on the folder's int8 ONNX file when it has one that belongs to its weights, like the CLI (`onnx_choice`:
--onnx FILE, --no-onnx or FER_ONNX=none for PyTorch). The header names it by its Hub id or its folder's name (never
a server path); space/header.py writes the rest of it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fer_model import DEFAULT_MODEL_ID, EmotionRecognizer
from fer_model.onnx_runtime import onnx_choice

ROOT = Path(__file__).resolve().parents[1]
LOCAL_RELEASE = ROOT.parent / "shared" / "models" / "fer-vgg16"


def resolve_model_source(cli_value: str | None = None) -> str:
    """--model, else FER_MODEL, else the shared release folder when present, else the Hub model."""
    local = str(LOCAL_RELEASE) if (LOCAL_RELEASE / "config.json").is_file() else DEFAULT_MODEL_ID
    return cli_value or os.environ.get("FER_MODEL") or local


def model_title(source: str) -> str:
    """How the page names the model: a Hub id as is, a local folder by its name only (never a server path)."""
    return Path(source).name if Path(source).exists() else source


def load_recognizer(source: str, tta: str = "none", onnx: str | None = None,
                    no_onnx: bool = False) -> EmotionRecognizer:
    """The recognizer, or exit saying how to point the app at a model. The runtime: onnx_choice(onnx, no_onnx), so
    --onnx FILE, else FER_ONNX, else "auto" (the folder's model_int8.onnx when it belongs to its weights)."""
    try:
        return EmotionRecognizer.from_pretrained(source, tta=tta, onnx=onnx_choice(onnx, no_onnx))
    except (OSError, ValueError) as error:
        sys.exit(f"app.py: cannot start without a model.\n{error}\n"
                 f"Example: FER_MODEL=path/to/fer-vgg16 python app.py   (or: python app.py --model path/to/folder)")
