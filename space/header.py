"""What the page header says about the served model: its name, its runtime, the TTA each tab serves and the test
accuracy metrics.json records for that runtime and TTA, or, when it records none, which figure is shown instead.

metrics.json (train.py, `evaluate`, `export-onnx --int8`) holds the PyTorch test accuracy (`accuracy`), per TTA
mode (`tta.<mode>.accuracy`) and the int8 file's (`int8.test_accuracy`, no TTA). The photo tab's figure is stated:
what most users see.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fer_model import EmotionRecognizer
from space.model import model_title

TTA_NAMES = {"none": "no TTA", "flip": "flip TTA", "10crop": "ten-crop TTA"}
MODE_NAMES = {"photo": "Photo", "api": "API", "live": "Live", "video": "Video"}


def read_metrics(source: str) -> dict[str, Any]:
    """metrics.json of the folder or Hub cache; {} when there is none (offline, no file, unreadable, not a test
    split's)."""
    from transformers.utils import cached_file

    try:
        path = cached_file(source, "metrics.json", _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
        metrics = json.loads(Path(path).read_text()) if path else {}
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) and metrics.get("split") == "test" else {}


def figure(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def served_accuracy(metrics: dict[str, Any], onnx_file: Path | None, tta: str) -> tuple[float | None, str]:
    """(test accuracy, what it is) for this runtime and TTA, from metrics.json; when it has no figure for the
    combination, the nearest one it has (same runtime without TTA, else PyTorch's), saying so."""
    int8 = metrics.get("int8") if isinstance(metrics.get("int8"), dict) else {}
    pytorch = figure(metrics.get("accuracy"))
    if onnx_file is not None:
        if int8.get("file") != onnx_file.name or figure(int8.get("test_accuracy")) is None:
            return pytorch, f"PyTorch's, without TTA: metrics.json has no figure for {onnx_file.name}"
        if tta == "none":
            return figure(int8["test_accuracy"]), "int8, no TTA"
        return figure(int8["test_accuracy"]), f"int8 without TTA: metrics.json has no int8 figure with {tta} TTA"
    if tta == "none":
        return pytorch, "PyTorch, no TTA"
    with_tta = figure((metrics.get("tta") or {}).get(tta, {}).get("accuracy"))
    if with_tta is not None:
        return with_tta, f"PyTorch, {TTA_NAMES[tta]}"
    return pytorch, f"PyTorch without TTA: metrics.json has no {tta} TTA figure"


def runtime_title(recognizer: EmotionRecognizer) -> str:
    """What runs the classifier, for the header: onnxruntime and the file's name, or PyTorch."""
    return f"onnxruntime (`{recognizer.onnx_file.name}`)" if recognizer.onnx_file else "PyTorch"


def tta_summary(modes: dict[str, str]) -> str:
    """ "flip TTA in every tab and the API", or "Photo and API: ten-crop TTA; Live and Video: no TTA"."""
    groups: dict[str, list[str]] = {}
    for mode, tta in modes.items():
        groups.setdefault(tta, []).append(MODE_NAMES[mode])
    if len(groups) == 1 and len(modes) == len(MODE_NAMES):
        return f"{TTA_NAMES[next(iter(groups))]} in every tab and the API"
    return "; ".join(f"{' and '.join(names)}: {TTA_NAMES[tta]}" for tta, names in groups.items())


def model_header(source: str, recognizer: EmotionRecognizer, modes: dict[str, str] | None = None) -> str:
    """ "Model: `fer-vgg16`, run by onnxruntime (`model_int8.onnx`); flip TTA in every tab and the API. Test accuracy
    66.76 % (int8 without TTA: ...)." The figure is for the Photo tab's runtime and TTA."""
    modes = modes or {mode: recognizer.tta for mode in MODE_NAMES}
    accuracy, what = served_accuracy(read_metrics(source), recognizer.onnx_file, modes.get("photo", "none"))
    score = f" Test accuracy {100 * accuracy:.2f} % ({what})." if accuracy is not None else ""
    return f"Model: `{model_title(source)}`, run by {runtime_title(recognizer)}; {tta_summary(modes)}.{score}"
