"""Batched augmentation on (N, 1, H, W) grey tensors in [0, 1], on whatever device they live on.

Training keeps the decoded dataset resident on the device and augments whole chunks of faces here
(train/batches.py), so there is no per-image PIL work in the loop. Every random draw takes an explicit
`torch.Generator`, so a chunk's augmentation depends only on the generator's seed (which makes resumed
runs reproducible), and nothing waits for the host. MixUp mixes whole batches of pixel_values and is
torchvision's (v2.MixUp, in train.py).

The geometry (random resized crop, rotation, zoom, shift, the random N-px crop of --crop_size, and the
output size) is one 3x3 matrix per image and one `grid_sample` for the whole chunk. The random boxes follow
torchvision's semantics draw for draw: RandomCrop's uniform integer offsets; RandomResizedCrop's and
RandomErasing's 10 attempts of an area fraction (uniform in `scale`) and a
log-uniform aspect ratio (in `ratio`), the first box that fits, placed uniformly. Differences from
torchvision, by design: crop, rotation, zoom and shift are one bilinear resampling of the face
(torchvision resamples once per transform), so a crop followed by a rotation is a little sharper; the
crop alone matches torchvision's resized_crop (bilinear, no antialias; the boxes never exceed the face,
so it only enlarges) pixel for pixel; rotation and shift fill uncovered corners with the nearest edge
pixel (Keras' fill_mode="nearest") where torchvision fills black; erasing fills the box with uniform grey noise in
[0, 1] before normalisation (torchvision's value="random" draws N(0, 1) per channel after it, its
default value=0 is the normalised mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from train.recipe import Recipe

ATTEMPTS = 10  # torchvision's tries per image for a box that fits
RESIZED_CROP_RATIO = (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop default aspect range
Range = tuple[float, float] | list[float]


def _uniform(shape: tuple[int, ...], low: float, high: float, like: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=like.device, dtype=torch.float32) * (high - low) + low


def box_sides(n: int, height: int, width: int, scale: Range, ratio: Range, like: torch.Tensor,
              generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's ATTEMPTS draws per image, as two (n, ATTEMPTS) tensors of box sides:
    round(sqrt(area * aspect)) and round(sqrt(area / aspect))."""
    area = _uniform((n, ATTEMPTS), scale[0], scale[1], like, generator) * (height * width)
    aspect = _uniform((n, ATTEMPTS), math.log(ratio[0]), math.log(ratio[1]), like, generator).exp()
    return (area * aspect).sqrt().round(), (area / aspect).sqrt().round()


def place_boxes(heights: torch.Tensor, widths: torch.Tensor, fits: torch.Tensor, height: int, width: int,
                generator: torch.Generator | None) -> tuple[torch.Tensor, ...]:
    """The first attempt that fits, placed uniformly (torchvision's randint(0, side - box + 1)).

    Returns (top, left, box height, box width, found), each (n,); where no attempt fits, found is False.
    """
    first = fits.int().argmax(1, keepdim=True)
    box_h, box_w = heights.gather(1, first).squeeze(1), widths.gather(1, first).squeeze(1)
    found = fits.any(1)
    top = (_uniform((len(found),), 0, 1, box_h, generator) * (height - box_h + 1).clamp_min(1)).floor()
    left = (_uniform((len(found),), 0, 1, box_w, generator) * (width - box_w + 1).clamp_min(1)).floor()
    return top, left, box_h, box_w, found


def resized_crop_boxes(n: int, height: int, width: int, scale: Range, ratio: Range = RESIZED_CROP_RATIO,
                       like: torch.Tensor | None = None, generator: torch.Generator | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """RandomResizedCrop.get_params for n images at once: (top, left, box height, box width), float (n,)."""
    like = torch.empty(0) if like is None else like
    box_w, box_h = box_sides(n, height, width, scale, ratio, like, generator)  # torchvision: w uses area * aspect
    fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
    top, left, box_h, box_w, found = place_boxes(box_h, box_w, fits, height, width, generator)
    # torchvision's fallback: the centre crop at the nearest allowed aspect ratio (the whole face when square)
    fallback_w, fallback_h = float(width), float(height)
    if width / height < min(ratio):
        fallback_h = float(round(width / min(ratio)))
    elif width / height > max(ratio):
        fallback_w = float(round(height * max(ratio)))
    pick = [(top, (height - fallback_h) // 2), (left, (width - fallback_w) // 2), (box_h, fallback_h),
            (box_w, fallback_w)]
    return tuple(torch.where(found, value, torch.full_like(value, default)) for value, default in pick)


def crop_matrix(top: torch.Tensor, left: torch.Tensor, box_h: torch.Tensor, box_w: torch.Tensor, height: int,
                width: int) -> torch.Tensor:
    """(n, 3, 3) maps of normalised output coordinates onto each pixel box of the input (align_corners=False)."""
    zero, one = torch.zeros_like(top), torch.ones_like(top)
    rows = [torch.stack([box_w / width, zero, (2 * left + box_w) / width - 1], -1),
            torch.stack([zero, box_h / height, (2 * top + box_h) / height - 1], -1),
            torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, 1)


def random_crop_matrix(n: int, crop_size: int, height: int, width: int, like: torch.Tensor,
                       generator: torch.Generator | None) -> torch.Tensor:
    """torchvision's RandomCrop for n images at once: (n, 3, 3) maps of crop_size-px output coordinates onto
    a crop_size box whose top and left are uniform integers in [0, side - crop_size] (RandomCrop.get_params)."""
    top, left = (torch.randint(0, side - crop_size + 1, (n,), generator=generator, device=like.device).float()
                 for side in (height, width))
    box = torch.full_like(top, float(crop_size))
    return crop_matrix(top, left, box, box, height, width)


def affine_matrix(n: int, degrees: float, scale: float, translate: float, like: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor:
    """(n, 3, 3) inverse maps (output -> input) of "rotate ±degrees, zoom 1 ± scale, shift ± translate"."""
    angle = _uniform((n,), -degrees, degrees, like, generator) * (math.pi / 180.0)
    zoom = _uniform((n,), 1.0 - scale, 1.0 + scale, like, generator)
    shift = _uniform((2 * n,), -translate, translate, like, generator).view(n, 2) * 2.0  # [-1, 1] grid units
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    inverse = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], 1)  # (n, 2, 2)
    offset = -(inverse @ shift.unsqueeze(-1))
    bottom = F.pad(torch.ones(n, 1, 1, device=like.device), (2, 0))  # (0, 0, 1) rows, made on the device
    return torch.cat([torch.cat([inverse, offset], dim=2), bottom], dim=1)


def resample(gray: torch.Tensor, theta: torch.Tensor, boxes: tuple[torch.Tensor, ...] | None = None,
             output_size: int | None = None) -> torch.Tensor:
    """Bilinear samples of `gray` at `theta` (n, 3, 3: normalised output -> input coordinates), `output_size`
    square (default: the input's size), clamped to each image's pixel box (default: the whole image).

    Clamping to the box's edge pixel centres is what a crop followed by edge-pixel filling does, so the
    crop alone matches torchvision's resized_crop (bilinear, no antialias) pixel for pixel.
    """
    n, channels, height, width = gray.shape
    out_h, out_w = (output_size, output_size) if output_size else (height, width)
    grid = F.affine_grid(theta[:, :2].to(gray.dtype), [n, channels, out_h, out_w], align_corners=False)
    if boxes is not None:
        top, left, box_h, box_w = (b.to(gray.dtype).view(n, 1, 1) for b in boxes)
        x = torch.minimum(torch.maximum(grid[..., 0], (2 * left + 1) / width - 1), (2 * (left + box_w) - 1) / width - 1)
        y = torch.minimum(torch.maximum(grid[..., 1], (2 * top + 1) / height - 1), (2 * (top + box_h) - 1) / height - 1)
        grid = torch.stack([x, y], -1)
    return F.grid_sample(gray, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_affine(
    gray: torch.Tensor,
    degrees: float = 10.0,
    scale: float = 0.1,
    translate: float = 0.1,
    generator: torch.Generator | None = None,
    resized_crop_scale: Range | None = None,
    output_size: int | None = None,
    crop_size: int | None = None,
) -> torch.Tensor:
    """Per-image random resized crop (optional), then rotation (±degrees), zoom (1 ± scale) and shift
    (± translate of the side), sampled at `output_size` (default: the input's); with `crop_size`, last a
    random crop_size-px crop of that (torchvision's RandomCrop, on the input's pixel grid), which is the output.

    One `affine_grid` + `grid_sample` for the whole batch; borders are filled with the nearest edge pixel
    (of the resized crop, when there is one). The random crop alone is an exact slice of the input.
    """
    if crop_size is not None and output_size not in (None, crop_size):
        raise ValueError(f"output_size={output_size} contradicts crop_size={crop_size}: a crop is sampled at its size")
    n, _, height, width = gray.shape
    theta, boxes = affine_matrix(n, degrees, scale, translate, gray, generator), None
    if resized_crop_scale is not None:  # applied first to the face, so its map comes last
        boxes = resized_crop_boxes(n, height, width, resized_crop_scale, like=gray, generator=generator)
        theta = crop_matrix(*boxes, height, width) @ theta
    if crop_size is not None:  # applied last to the face, so its map comes first
        theta = theta @ random_crop_matrix(n, crop_size, height, width, gray, generator)
    return resample(gray, theta, boxes, crop_size or output_size)


def random_hflip(gray: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flip = torch.rand(gray.shape[0], generator=generator, device=gray.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), gray.flip(-1), gray)


def random_erasing(gray: torch.Tensor, p: float = 0.5, scale: Range = (0.02, 0.33), ratio: Range = (0.3, 3.3),
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """torchvision's RandomErasing for a batch: with probability p per image, one box of a random area
    (fraction in `scale`) and aspect (in `ratio`), strictly smaller than the image, becomes uniform noise."""
    n, _, height, width = gray.shape
    box_h, box_w = box_sides(n, height, width, scale, ratio, gray, generator)  # torchvision: h uses area * aspect
    top, left, box_h, box_w, found = place_boxes(box_h, box_w, (box_h < height) & (box_w < width), height, width,
                                                 generator)
    erase = (torch.rand(n, generator=generator, device=gray.device) < p) & found
    rows = torch.arange(height, device=gray.device).view(1, -1)
    cols = torch.arange(width, device=gray.device).view(1, -1)
    in_rows = (rows >= top.view(-1, 1)) & (rows < (top + box_h).view(-1, 1))
    in_cols = (cols >= left.view(-1, 1)) & (cols < (left + box_w).view(-1, 1))
    mask = (in_rows.view(n, 1, height, 1) & in_cols.view(n, 1, 1, width)) & erase.view(n, 1, 1, 1)
    noise = torch.rand(gray.shape, generator=generator, device=gray.device, dtype=gray.dtype)
    return torch.where(mask, noise, gray)


@dataclass(frozen=True)
class BatchAugment:
    """The training augmentation of a recipe: (resized crop +) affine (+ random crop_size-px crop), flip,
    erasing, in that order (usef-kh's order: their ten crops come after the geometry, erasing per crop)."""

    degrees: float = 10.0
    scale: float = 0.1
    translate: float = 0.1
    hflip: bool = True
    erasing_p: float = 0.5
    erasing_scale: tuple[float, float] = (0.02, 0.33)
    erasing_ratio: tuple[float, float] = (0.3, 3.3)
    resized_crop_scale: tuple[float, float] | None = None
    crop_size: int | None = None  # random crops of this side (the output's) of the augmented face

    def __call__(self, gray: torch.Tensor, generator: torch.Generator | None = None,
                 output_size: int | None = None) -> torch.Tensor:
        """Augmented copies of `gray`, crop_size or `output_size` pixels square (default: the input's size)."""
        resize = output_size is not None and gray.shape[-2:] != (output_size, output_size)
        if self.degrees or self.scale or self.translate or self.resized_crop_scale or self.crop_size or resize:
            gray = random_affine(gray, self.degrees, self.scale, self.translate, generator, self.resized_crop_scale,
                                 output_size, self.crop_size)
        if self.hflip:
            gray = random_hflip(gray, 0.5, generator)
        if self.erasing_p > 0:
            gray = random_erasing(gray, self.erasing_p, self.erasing_scale, self.erasing_ratio, generator)
        return gray


def build_augment(recipe: Recipe) -> BatchAugment | None:
    """The recipe's on-device augmentation of each face: None when augment is off, except that a crop_size
    recipe always trains on random crops (then the only augmentation)."""
    if not recipe.augment:
        return BatchAugment(0.0, 0.0, 0.0, False, 0.0, crop_size=recipe.crop_size) if recipe.crop_size else None
    crop = tuple(recipe.resized_crop_scale) if recipe.resized_crop_scale else None
    return BatchAugment(recipe.rotation, recipe.scale, recipe.translate, recipe.hflip, recipe.erasing_p,
                        tuple(recipe.erasing_scale), tuple(recipe.erasing_ratio), crop, recipe.crop_size)


def build_mixup(recipe: Recipe, num_labels: int) -> v2.MixUp | None:
    """torchvision's MixUp of whole (N, C, H, W) device batches: integer labels in, soft targets out."""
    return v2.MixUp(alpha=recipe.mixup_alpha, num_classes=num_labels) if recipe.mixup_alpha > 0 else None
