"""The training split resident on the device, served as augmented batches with no host sync per step.

This is train.py's throughput design: the decoded faces live on the device as uint8 for the whole run;
once per epoch one permutation (seeded by seed and epoch, so the same on every process and in a resumed
run) is cut into equal per-process shards and copied to the device; faces are gathered, augmented and
turned into pixel_values (fer_model.image_processing.gray_to_pixel_values) `chunk_images` at a time, and
each batch is a view into its chunk, so a training step launches no input-side kernels at all.
A model trained on crops (config.crop_size) gets the augmentation's random crops of the image_size-px faces,
which are only normalised (fer_model.image_processing.crops_to_pixel_values).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from fer_model import FerConfig
from fer_model.image_processing import crops_to_pixel_values, gray_to_pixel_values, resize
from train.augment import BatchAugment

# Faces augmented per batched call. One call covers many steps (64 at batch 128), so the ~40 small
# augmentation kernels are launched once per chunk rather than once per step; 8192 faces at 96 px are
# under 1 GB of float32 pixel_values.
AUGMENT_CHUNK_IMAGES = 8192


def shard_size(num_samples: int, num_processes: int) -> int:
    """Samples each process trains on per epoch: equal shards, the remainder (< num_processes) left out."""
    size = num_samples // num_processes
    if size < 2:
        raise ValueError(f"{num_samples} training samples cannot feed {num_processes} process(es) (need 2 each)")
    return size


def steps_per_epoch(shard: int, batch_size: int, drop_last: bool = False) -> int:
    """Batches per epoch; a last batch of one sample is dropped (BatchNorm needs two), any partial one with
    drop_last (so every step has the same shape: one compiled graph, one CUDA graph)."""
    if drop_last:
        if shard < batch_size:
            raise ValueError(f"drop_last: {shard} samples per process cannot fill one batch of {batch_size}")
        return shard // batch_size
    steps = math.ceil(shard / batch_size)
    return steps - 1 if steps > 1 and shard % batch_size == 1 else steps


def epoch_batches(num_samples: int, batch_size: int, seed: int, epoch: int, process_index: int,
                  num_processes: int, drop_last: bool = False) -> list[torch.Tensor]:
    """This process's batches (sample indices) for one epoch.

    One permutation per epoch, seeded by (seed, epoch) and so identical on every process, is cut into
    disjoint equal shards: each process sees its own samples and all take the same number of steps.
    Seeding by epoch makes a resumed run shuffle exactly as an uninterrupted one.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_samples, generator=generator)
    shard = shard_size(num_samples, num_processes)
    mine = order[process_index * shard : (process_index + 1) * shard]
    return list(mine.split(batch_size))[: steps_per_epoch(shard, batch_size, drop_last)]


def training_batches(
    images: torch.Tensor, labels: torch.Tensor, batches: list[torch.Tensor], config: FerConfig,
    augment: BatchAugment | None = None, generator: torch.Generator | None = None, channels_last: bool = False,
    chunk_images: int = AUGMENT_CHUNK_IMAGES, output_size: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(pixel_values, labels) per batch of sample indices, ready for the model, all on the images' device.

    Augmentation is per image, so chunking does not change what it does, only how often it is launched.
    `output_size` is the side the augmentation samples the faces at (default: as stored); the model's
    image_size is made from it by gray_to_pixel_values. With config.crop_size, the faces are brought to
    image_size (the pixel module's resize: a no-op for 48-px faces at 48) and `augment` cuts the crops.
    """
    if output_size is not None and augment is None and images.shape[-1] != output_size:
        raise ValueError(f"output_size={output_size} needs an augmentation to sample the {images.shape[-1]}-px faces")
    crop_size = config.crop_size
    if crop_size and (augment is None or augment.crop_size != crop_size):
        raise ValueError(f"crop_size={crop_size}: training needs an augmentation that cuts random {crop_size}-px "
                         f"crops (BatchAugment(crop_size={crop_size}); train.augment.build_augment makes it)")
    if not batches:
        return
    sizes = [len(batch) for batch in batches]
    order = torch.cat(batches).to(images.device, non_blocking=True)
    per_chunk = max(1, chunk_images // max(sizes))
    start = 0
    for first in range(0, len(sizes), per_chunk):
        chunk_sizes = sizes[first : first + per_chunk]
        index = order[start : start + sum(chunk_sizes)]
        start += sum(chunk_sizes)
        gray = images[index].float().div_(255.0)
        if crop_size:  # cut from the face at image_size, where evaluation takes its centre crop
            pixel_values = crops_to_pixel_values(augment(resize(gray, config.image_size), generator, output_size),
                                                 config, channels_last)
        else:
            gray = augment(gray, generator, output_size) if augment is not None else gray
            pixel_values = gray_to_pixel_values(gray, config, channels_last)
        yield from zip(pixel_values.split(chunk_sizes), labels[index].split(chunk_sizes), strict=True)


@dataclass
class DeviceBatches:
    """One process's view of the resident training split: `epoch(n)` yields that epoch's batches."""

    images: torch.Tensor  # (N, 1, 48, 48) uint8, on the training device
    labels: torch.Tensor  # (N,) int64, on the same device
    config: FerConfig
    batch_size: int
    seed: int
    augment: BatchAugment | None = None
    mixup: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None  # whole batches
    channels_last: bool = False
    process_index: int = 0
    num_processes: int = 1
    chunk_images: int = AUGMENT_CHUNK_IMAGES
    drop_last: bool = False
    output_size: int | None = None  # the side faces are augmented at (default: as stored)

    def __post_init__(self) -> None:
        self.steps_per_epoch = steps_per_epoch(shard_size(len(self.labels), self.num_processes), self.batch_size,
                                               self.drop_last)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's (pixel_values, labels) batches; labels become soft targets (N, C) under MixUp.

        Augmentation draws from a generator seeded by (seed, epoch, process); MixUp (torchvision's) from
        torch's global RNG, which train.py seeds per epoch.
        """
        generator = torch.Generator(device=self.images.device).manual_seed(
            self.seed * 100_003 + epoch * 1_009 + self.process_index)
        batches = epoch_batches(len(self.labels), self.batch_size, self.seed, epoch, self.process_index,
                                self.num_processes, self.drop_last)
        inputs = training_batches(self.images, self.labels, batches, self.config, self.augment, generator,
                                  self.channels_last, self.chunk_images, self.output_size)
        return inputs if self.mixup is None else (self.mixup(*batch) for batch in inputs)
