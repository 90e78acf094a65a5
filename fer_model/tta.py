"""Test-time augmentation lives in the pixel module (fer_model.image_processing); these names stay importable here."""

from .image_processing import CROP_FRACTION, TTA_MODES, TtaMode, logits_with_tta, tta_views

__all__ = ["CROP_FRACTION", "TTA_MODES", "TtaMode", "logits_with_tta", "tta_views"]
