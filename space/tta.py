"""Which test-time augmentation each part of the Space serves: TTA_DEFAULTS, chosen by benchmarks/tta_modes.py from
validation accuracy and milliseconds per face on 2 cores (benchmarks/RESULTS.md), or one mode for all (--tta)."""

from __future__ import annotations

import copy

from fer_model import EmotionRecognizer
from fer_model.image_processing import TTA_MODES

# Flip everywhere: +0.81 point of validation accuracy for 1.6x the time per face (int8: ~3 ms); ten-crop adds
# 0.05 point more for 6.3x (RESULTS.md, "Test-time augmentation per part of the Space").
TTA_DEFAULTS = {"photo": "flip", "api": "flip", "live": "flip", "video": "flip"}


def serving_modes(tta: str | None = None) -> dict[str, str]:
    """TTA per mode: TTA_DEFAULTS, or `tta` everywhere (app.py --tta)."""
    if tta is not None and tta not in TTA_MODES:
        raise ValueError(f"tta={tta!r} is not one of {TTA_MODES}")
    return dict(TTA_DEFAULTS) if tta is None else dict.fromkeys(TTA_DEFAULTS, tta)


def with_tta(recognizer: EmotionRecognizer, tta: str) -> EmotionRecognizer:
    """The same recognizer (model, runtime, detector shared: no second copy in memory) averaging `tta`'s views."""
    if tta == recognizer.tta:
        return recognizer
    if tta not in TTA_MODES:
        raise ValueError(f"tta={tta!r} is not one of {TTA_MODES}")
    served = copy.copy(recognizer)
    served.tta = tta
    return served
