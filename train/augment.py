"""Batched augmentation on (N, 1, H, W) grey tensors in [0, 1], on whatever device they live on.

Training keeps the decoded dataset resident on the device and augments whole chunks of faces here
(train/batches.py), so there is no per-image PIL work in the loop. Every random draw takes an explicit
`torch.Generator`, so a chunk's augmentation depends only on the generator's seed (which makes resumed
runs reproducible). MixUp mixes whole batches of pixel_values and is torchvision's (v2.MixUp, in train.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from train.recipe import Recipe


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=like.device, dtype=like.dtype) * (high - low) + low


def random_affine(
    gray: torch.Tensor,
    degrees: float = 10.0,
    scale: float = 0.1,
    translate: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image random rotation (±degrees), zoom (1 ± scale) and shift (± translate of the side).

    One `affine_grid` + `grid_sample` for the whole batch; borders are filled with the nearest edge
    pixel (Keras' fill_mode="nearest"), so no black corners appear.
    """
    n = gray.shape[0]
    angle = _uniform(n, -degrees, degrees, gray, generator) * (math.pi / 180.0)
    zoom = _uniform(n, 1.0 - scale, 1.0 + scale, gray, generator)
    shift = _uniform(2 * n, -translate, translate, gray, generator).view(n, 2) * 2.0  # [-1, 1] grid units
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # affine_grid maps output to input coordinates: the inverse of "rotate, zoom, then shift".
    inverse = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], 1)  # (n, 2, 2)
    offset = -(inverse @ shift.unsqueeze(-1))
    theta = torch.cat([inverse, offset], dim=2)
    grid = F.affine_grid(theta, list(gray.shape), align_corners=False)
    return F.grid_sample(gray, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_hflip(gray: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flip = torch.rand(gray.shape[0], generator=generator, device=gray.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), gray.flip(-1), gray)


def random_erasing(
    gray: torch.Tensor, p: float = 0.5, size: int = 16, generator: torch.Generator | None = None
) -> torch.Tensor:
    """With probability p per image, replace a size x size square (inside the image) by uniform noise."""
    n, _, height, width = gray.shape
    size_y, size_x = min(size, height), min(size, width)
    erase = torch.rand(n, generator=generator, device=gray.device) < p
    top = (torch.rand(n, generator=generator, device=gray.device) * (height - size_y + 1)).long()
    left = (torch.rand(n, generator=generator, device=gray.device) * (width - size_x + 1)).long()
    rows = torch.arange(height, device=gray.device).view(1, -1)
    cols = torch.arange(width, device=gray.device).view(1, -1)
    in_rows = (rows >= top.view(-1, 1)) & (rows < (top + size_y).view(-1, 1))
    in_cols = (cols >= left.view(-1, 1)) & (cols < (left + size_x).view(-1, 1))
    mask = (in_rows.view(n, 1, height, 1) & in_cols.view(n, 1, 1, width)) & erase.view(n, 1, 1, 1)
    noise = torch.rand(gray.shape, generator=generator, device=gray.device, dtype=gray.dtype)
    return torch.where(mask, noise, gray)


@dataclass(frozen=True)
class BatchAugment:
    """The training augmentation of a recipe: affine, flip, erasing, in that order."""

    degrees: float = 10.0
    scale: float = 0.1
    translate: float = 0.1
    hflip: bool = True
    erasing_p: float = 0.5
    erasing_size: int = 16

    def __call__(self, gray: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.degrees or self.scale or self.translate:
            gray = random_affine(gray, self.degrees, self.scale, self.translate, generator)
        if self.hflip:
            gray = random_hflip(gray, 0.5, generator)
        if self.erasing_p > 0 and self.erasing_size > 0:
            gray = random_erasing(gray, self.erasing_p, self.erasing_size, generator)
        return gray


def build_augment(recipe: Recipe) -> BatchAugment | None:
    """The recipe's on-device augmentation of each face (None when augment is off)."""
    if not recipe.augment:
        return None
    return BatchAugment(recipe.rotation, recipe.scale, recipe.translate, recipe.hflip, recipe.erasing_p,
                        recipe.erasing_size)


def build_mixup(recipe: Recipe, num_labels: int) -> v2.MixUp | None:
    """torchvision's MixUp of whole (N, C, H, W) device batches: integer labels in, soft targets out."""
    return v2.MixUp(alpha=recipe.mixup_alpha, num_classes=num_labels) if recipe.mixup_alpha > 0 else None
