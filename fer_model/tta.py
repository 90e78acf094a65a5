"""Test-time augmentation shared by evaluation (`python -m fer_model evaluate --tta`) and the recognizer.

Modes: "none"; "flip" (the image and its mirror); "10crop" (4 corner + centre crops of 11/12 of the
side, i.e. 44 px of 48, each resized back to the input size, and their mirrors). Predictions are
averaged as probabilities; the result is returned as log-probabilities so that `softmax` of it gives
the averaged probabilities and `argmax` the averaged decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F

TtaMode = Literal["none", "flip", "10crop"]  # the one list of modes; TTA_MODES is derived from it
TTA_MODES: tuple[str, ...] = get_args(TtaMode)
CROP_FRACTION = 11 / 12  # 44 px of 48


def tta_views(pixel_values: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The augmented copies of a (N, C, H, W) batch that a TTA mode averages over."""
    if mode not in TTA_MODES:
        raise ValueError(f"tta={mode!r} is not one of {TTA_MODES}")
    if mode == "none":
        return [pixel_values]
    if mode == "flip":
        return [pixel_values, pixel_values.flip(-1)]
    height, width = pixel_values.shape[-2:]
    crop_h, crop_w = round(height * CROP_FRACTION), round(width * CROP_FRACTION)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    corners = [(0, 0), (0, width - crop_w), (height - crop_h, 0), (height - crop_h, width - crop_w), (top, left)]
    crops = [pixel_values[..., y : y + crop_h, x : x + crop_w] for y, x in corners]
    crops = [F.interpolate(c, size=(height, width), mode="bilinear", align_corners=False) for c in crops]
    return crops + [c.flip(-1) for c in crops]


def logits_with_tta(
    forward: Callable[[torch.Tensor], torch.Tensor], pixel_values: torch.Tensor, mode: str | None = "none"
) -> torch.Tensor:
    """Averaged prediction of `forward` (pixel_values -> logits) over the views of `mode`.

    One forward pass over all views stacked, so TTA costs one (larger) batch rather than many calls.
    """
    mode = mode or "none"
    views = tta_views(pixel_values, mode)
    if len(views) == 1:
        return forward(pixel_values)
    logits = forward(torch.cat(views)).float()
    probabilities = logits.softmax(-1).view(len(views), pixel_values.shape[0], -1).mean(0)
    return probabilities.clamp_min(1e-12).log()
