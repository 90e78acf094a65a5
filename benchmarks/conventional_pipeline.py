"""The conventional input pipeline that benchmarks/train_throughput.py measures train.py's against:
torchvision.transforms.v2 on one PIL face at a time, in a DataLoader with worker processes.

The transform is the recipe's augmentation written the usual way (RandomResizedCrop when the recipe has
one, RandomAffine, RandomHorizontalFlip, RandomCrop when it has a crop_size, grey to 3 channels,
ToImage/ToDtype/Normalize, RandomErasing with the recipe's area and aspect ranges), so both pipelines do the
same work per face.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed
from fer_model.configuration import FER2013_LABELS  # noqa: E402
from train.augment import RESIZED_CROP_RATIO  # noqa: E402
from train.recipe import Recipe  # noqa: E402

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def load_faces(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """uint8 (N, 1, 48, 48) faces + labels for train.py, and the per-sample source for the conventional path."""
    if args.dataset:
        from fer_model.data import load_fer2013, split_to_tensors

        split = load_fer2013(args.dataset)["train"]
        images, labels = split_to_tensors(split)
        return images, labels, split  # the conventional path decodes split[i]["image"] (PNG) per sample
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.num_images, 1, 48, 48), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, len(FER2013_LABELS), (args.num_images,), generator=generator)
    pil = [Image.fromarray(face[0].numpy(), mode="L") for face in images]
    return images, labels, [{"image": face, "label": int(label)} for face, label in zip(pil, labels, strict=True)]


class PerSampleFaces(torch.utils.data.Dataset):
    """A map-style dataset applying a torchvision transform to one PIL face at a time (the usual recipe)."""

    def __init__(self, rows: Any, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.rows, self.transform = rows, transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.rows[index]
        return self.transform(row["image"]), row["label"]


def conventional_transform(recipe: Recipe, config: Any) -> Callable[[Image.Image], torch.Tensor]:
    """The recipe's augmentation written the usual way, with torchvision.transforms.v2 on PIL images."""
    from torchvision.transforms import v2

    steps: list[Any] = []
    if recipe.augment and recipe.resized_crop_scale:
        steps.append(v2.RandomResizedCrop(48, scale=tuple(recipe.resized_crop_scale), ratio=RESIZED_CROP_RATIO))
    if recipe.augment:
        steps.append(v2.RandomAffine(degrees=recipe.rotation, translate=(recipe.translate, recipe.translate),
                                     scale=(1 - recipe.scale, 1 + recipe.scale)))
        if recipe.hflip:
            steps.append(v2.RandomHorizontalFlip())
    if config.image_size != 48:
        steps.append(v2.Resize(config.image_size, antialias=True))
    if config.crop_size:  # WuJie1010's RandomCrop(44), at the recipe's crop_size
        steps.append(v2.RandomCrop(config.crop_size))
    steps += [v2.Grayscale(num_output_channels=3), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
              v2.Normalize(config.image_mean, config.image_std)]
    if recipe.augment and recipe.erasing_p > 0:
        steps.append(v2.RandomErasing(p=recipe.erasing_p, scale=tuple(recipe.erasing_scale),
                                      ratio=tuple(recipe.erasing_ratio), value="random"))
    return v2.Compose(steps)


def conventional_batches(rows: Any, recipe: Recipe, config: Any, device: torch.device,
                         num_workers: int) -> Batches:
    """DataLoader over per-sample transforms, forever (persistent workers); batches moved to the device."""
    loader = torch.utils.data.DataLoader(
        PerSampleFaces(rows, conventional_transform(recipe, config)), batch_size=recipe.batch_size, shuffle=True,
        num_workers=num_workers, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=num_workers > 0)
    for pixel_values, labels in itertools.chain.from_iterable(itertools.repeat(loader)):
        pixel_values = pixel_values.to(device, non_blocking=True)
        if recipe.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        yield pixel_values, labels.to(device, non_blocking=True)
